"""A real Kubernetes control plane on loopback, for tests and benchmarks (cf. `kopf.testing`).

etcd and kube-apiserver always; kube-controller-manager, kube-scheduler and kwok (fake
nodes whose pods become Running and Ready without containers) when `start_workers` is
called. Binaries come from `scripts/build-control-plane` (built from the official Go modules
and cached). Each runs under the harness's `ChildProcess`, its log in `workdir`. Everything
listens on loopback ports chosen free beforehand (etcd's address goes into kube-apiserver's
flags, so it cannot be learned afterwards); credentials are generated per run:
a CA, the serving certificate, an admin client certificate (group system:masters), an admin
static token and the service-account signing key. `kubeconfig` uses the token.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .ports import free_port
from .process import ChildProcess, stop_all

REPO = Path(__file__).resolve().parents[2]  # the harness runs from a source checkout only
BUILD_SCRIPT = REPO / "scripts" / "build-control-plane"
PROGRAMS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
            "kwok")


class ControlPlaneUnavailable(RuntimeError):
    """The binaries cannot be had here (no Go toolchain): tests skip with this reason."""


def binaries() -> Path:
    """The binaries' folder: $FEDSTATS_K8S_BIN, else the build script's (cached) output.

    ControlPlaneUnavailable when the cache is empty and there is no Go to build with.
    """
    env = os.environ.get("FEDSTATS_K8S_BIN")
    if env:
        return Path(env)
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
    if done.returncode == 2 and shutil.which("go") is None:
        raise ControlPlaneUnavailable("Go is not installed: the control plane is built from "
                                      "the official Go modules by scripts/build-control-plane")
    if done.returncode != 0:
        raise RuntimeError(f"scripts/build-control-plane failed:\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])



def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


def _cert(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name,
          issuer_key: rsa.RSAPrivateKey, *, ca: bool = False, server: bool = False) -> bytes:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class ControlPlane:
    """etcd + kube-apiserver (+ workers on demand) in `workdir`; a context manager."""

    def __init__(self, workdir: Path, bin_dir: Path) -> None:
        self.dir = Path(workdir)
        self.bin = Path(bin_dir)
        self.procs: dict[str, ChildProcess] = {}
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.kubeconfig = self.dir / "kubeconfig"

    # ---- credentials

    def _credentials(self) -> None:
        d = self.dir
        ca_key, ca_name = _key(), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedstats-ca")])
        (d / "ca.crt").write_bytes(_cert(ca_name, ca_key, ca_name, ca_key, ca=True))
        server_key = _key()
        server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
        (d / "server.crt").write_bytes(_cert(server_name, server_key, ca_name, ca_key,
                                             server=True))
        _write_key(d / "server.key", server_key)
        admin_key = _key()
        admin_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])
        (d / "admin.crt").write_bytes(_cert(admin_name, admin_key, ca_name, ca_key))
        _write_key(d / "admin.key", admin_key)
        sa_key = _key()
        _write_key(d / "sa.key", sa_key)
        (d / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        (d / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        self.kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: "{self.server}", certificate-authority: "{d / 'ca.crt'}"}}
users:
- name: admin
  user: {{token: "{self.token}"}}
- name: admin-cert
  user: {{client-certificate: "{d / 'admin.crt'}", client-key: "{d / 'admin.key'}"}}
contexts:
- name: local
  context: {{cluster: local, user: admin, namespace: default}}
- name: local-cert
  context: {{cluster: local, user: admin-cert, namespace: default}}
current-context: local
""")

    # ---- processes

    def _spawn(self, name: str, args: Sequence[str]) -> None:
        child = ChildProcess([str(self.bin / args[0]), *args[1:]], self.dir / f"{name}.log",
                             cwd=self.dir, name=name)
        self.procs[name] = child.start()

    def _check_alive(self) -> None:
        for name, child in self.procs.items():
            if not child.running:
                raise RuntimeError(f"{name} exited:\n{child.log_tail()}")

    def start(self, timeout: float = 120.0) -> ControlPlane:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._credentials()
        etcd_port, peer_port = free_port(), free_port()
        self._spawn("etcd", [
            "etcd", "--name=default", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        d = self.dir
        self._spawn("kube-apiserver", [
            "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}", f"--cert-dir={d / 'certs'}",
            f"--tls-cert-file={d / 'server.crt'}", f"--tls-private-key-file={d / 'server.key'}",
            f"--client-ca-file={d / 'ca.crt'}", f"--token-auth-file={d / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=RBAC",
            "--allow-privileged=true", "--v=0",
        ])
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            self._check_alive()  # etcd dying makes the apiserver wait forever
            done = self.kubectl("get", "--raw", "/readyz", check=False)
            return done.returncode == 0 and done.stdout.strip() == "ok"

        self.procs["kube-apiserver"].wait_until(ready, timeout, what="ready (/readyz)",
                                                interval=0.25)

    def start_workers(self, timeout: float = 120.0) -> None:
        """controller-manager, scheduler and kwok with two fake nodes (cpu and gpu)."""
        if "kwok" in self.procs:
            return
        kc, d = str(self.kubeconfig), self.dir
        self._spawn("kube-controller-manager", [
            "kube-controller-manager", f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--secure-port=0",  # no health server: nothing reads it
            f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle",
        ])
        self._spawn("kube-scheduler", [
            "kube-scheduler", f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--secure-port=0",  # no health server: nothing reads it
        ])
        self._spawn("kwok", [
            "kwok", f"--kubeconfig={kc}", f"--config={self.bin / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.0.0.1/24", "--node-ip=10.0.0.1", "--node-lease-duration-seconds=40",
            "--server-address=127.0.0.1:0",
        ])
        self.kubectl("apply", "-f", "-", input=FAKE_NODES)

        def ready() -> bool:
            self._check_alive()
            sa = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
            nodes = self.kubectl("get", "nodes", "-o",
                                 "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
                                 check=False)
            return sa.returncode == 0 and nodes.stdout.split() == ["True", "True"]

        self.procs["kwok"].wait_until(ready, timeout, what="running two Ready fake nodes",
                                      interval=0.25)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}",
                               *args], input=input, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done

    def stop(self) -> None:
        stop_all(reversed(list(self.procs.values())))
        self.procs.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Two kwok-managed nodes: one for CPU pods and one GPU node, tainted as GPU pools usually are.
FAKE_NODES = """
apiVersion: v1
kind: Node
metadata:
  name: kwok-cpu-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: kwok-cpu-0, type: kwok}
spec: {}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "500"}
  capacity: {cpu: "64", memory: 256Gi, pods: "500"}
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-gpu-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: kwok-gpu-0, type: kwok, nvidia.com/gpu.present: "true"}
spec:
  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "110", nvidia.com/gpu: "8"}
  capacity: {cpu: "64", memory: 256Gi, pods: "110", nvidia.com/gpu: "8"}
"""
