"""The chart's NATS, run as its pods would run: a 3-server JetStream cluster, TLS, auth.

Each server runs the `nats.conf` that `helm template` renders, with the operator's auth
file (`authstore` renders the Secret, `authsync` writes it where the config includes it),
laid out as the pod's volumes are: `<root>/etc/nats/nats.conf`, `<root>/etc/nats-auth/`,
`<root>/etc/nats-tls/`. Only what one machine cannot share is moved, as a kubelet on one
host would: ports (client, cluster, monitor), the routes' pod DNS names (to loopback),
/data and /tmp. The nodes are real `fedstats node` processes holding their own users.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import numpy as np
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedstats.node.client import Client
from fedstats.node.security.keys import new_secret_key
from fedstats.operator import authstore, authsync, nats_admin
from fedstats.operator.members import auth_as
from fedstats.operator.natsauth import FederationAuth, account_name, user_name
from fedstats_harness.frames import frame
from fedstats_harness.helm import CHART, HelmUnavailable, find, helm, render, run_helm
from fedstats_harness.localnet import LocalNodes
from fedstats_harness.natsproc import READY, nats_server_binary
from fedstats_harness.ports import free_port
from fedstats_harness.process import ChildProcess, stop_all
from fedstats_harness.waiting import eventually

pytestmark = pytest.mark.slow
NAMESPACE = "fedstats"
FED = "fc"
PEERS = ("p1", "p2")
PASSWORDS = {"admin": "admin-pw", "p1": "p1-pw", "p2": "p2-pw"}
NAMES = ["a", "b", "c", "y"]
RNG = np.random.default_rng(12)


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    try:
        return helm()
    except HelmUnavailable as e:
        pytest.skip(str(e))


# ---------------------------------------------------------------- the pods, on one machine


def auth_file() -> str:
    """The auth file as the sidecar writes it from the operator's Secret."""
    state = {account_name(FED, NAMESPACE): FederationAuth(
        FED, "decentralized", admin=PASSWORDS["admin"],
        peers={p: PASSWORDS[p] for p in PEERS})}
    secret = authstore.desired_auth_secret(NAMESPACE, "nats-auth", state, "locked-pw")
    return authsync.auth_text(secret)


class Pod:
    """One NATS server of the StatefulSet: its volumes under `root`, its ports its own."""

    def __init__(self, root: Path, index: int) -> None:
        self.root, self.index = root, index
        self.client_port, self.cluster_port = free_port(), free_port()
        self.child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    def write(self, conf: str, routes: dict[int, int], tls: dict[str, bytes] | None) -> None:
        local = (conf.replace("port: 4222", f"port: {self.client_port}")
                 .replace("http_port: 8222", "http_port: -1")
                 .replace("port: 6222", f"port: {self.cluster_port}")
                 .replace("/data/jetstream", str(self.root / "data" / "jetstream"))
                 .replace("/tmp/nats.pid", str(self.root / "tmp" / "nats.pid"))
                 .replace("/etc/nats-tls/", str(self.root / "etc" / "nats-tls") + "/"))
        local = re.sub(rf"nats-(\d)\.nats-headless\.{NAMESPACE}\.svc:6222",
                       lambda m: f"127.0.0.1:{routes[int(m.group(1))]}", local)
        for sub in ("etc/nats", "etc/nats-auth", "etc/nats-tls", "tmp", "data"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "nats" / "nats.conf").write_text(local)
        authsync.write_if_changed(self.root / "etc" / "nats-auth" / "auth.conf", auth_file())
        for name, data in (tls or {}).items():
            (self.root / "etc" / "nats-tls" / name).write_bytes(data)

    def start(self) -> Pod:
        self.child = ChildProcess(
            [nats_server_binary(), "-c", str(self.root / "etc" / "nats" / "nats.conf")],
            self.root / "nats.log", env={"SERVER_NAME": f"nats-{self.index}"},
            name=f"nats-{self.index}").start()
        self.child.wait_for_output(READY, 30)
        return self

    def kill(self) -> None:
        assert self.child is not None
        self.child.kill()


def run_pods(helm_bin: Path, root: Path, values: dict[str, Any],
             tls: dict[str, bytes] | None = None) -> list[Pod]:  # fmt: skip
    objs = render(helm_bin, values, namespace=NAMESPACE)
    conf = find(objs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    replicas = int(find(objs, "StatefulSet", "nats")["spec"]["replicas"])
    pods = [Pod(root / f"nats-{i}", i) for i in range(replicas)]
    routes = {p.index: p.cluster_port for p in pods}
    for pod in pods:
        pod.write(conf, routes, tls)
    return [pod.start() for pod in pods]


# ---------------------------------------------------------------- a federation on them


def fed_body(replicas: int) -> dict[str, Any]:
    return {"metadata": {"name": FED, "namespace": NAMESPACE},
            "spec": {"nats": {"url": "", "replicas": replicas}, "streamMaxMemory": "16Mi"}}


def admin_auth(ca: str | None = None) -> nats_admin.NatsAuth:
    return auth_as(user_name(FED, "admin"), PASSWORDS["admin"], ca)


def form(clients: dict[str, Client], urls: str) -> None:
    """The admin creates the federation as its own user; each peer joins with the
    invitation the operator would ask for: carrying the peer's own user."""
    clients["admin"].fed_create("admin", {
        "fed_name": FED, "fed_type": "decentralized", "nats_hosts": urls, "sync_sched": "s1",
        "nats_sec_user": user_name(FED, "admin"), "nats_sec_passwd": PASSWORDS["admin"],
        "nats_stream_max_memory": 16 << 20})
    for peer in PEERS:
        invite = clients["admin"].fed_invitation(
            "admin", "pw", fed_peer_id=peer, nats_sec_user=user_name(FED, peer),
            nats_sec_passwd=PASSWORDS[peer])
        clients[peer].fed_join(peer, invite, "pw")


def learn(clients: dict[str, Client], who: str, n: int, pooled: list[np.ndarray]) -> None:
    x = RNG.normal(size=(n, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 3.0 + RNG.normal(scale=0.1, size=n)
    rows = np.column_stack([x, y])
    pooled.append(rows)
    clients[who].learn(who, frame(rows, NAMES))


def rows_at(client: Client, pid: str) -> int:
    return int(client.project_info(pid)["rows"])


def assert_exact(admin: Client, pooled: list[np.ndarray], model: str) -> None:
    data = np.vstack(pooled)
    context = {"inputAttributeNames": NAMES[:-1], "targetAttributeNames": ["y"]}
    admin.build("admin", model, "mlr", context)
    got = admin.predict("admin", model, frame(data, NAMES))["values"]["KSVSMap"]["values"]
    design = np.column_stack([np.ones(len(data)), data[:, :3]])
    coef, *_ = np.linalg.lstsq(design, data[:, 3], rcond=None)
    want = design @ coef
    assert np.max(np.abs(np.array([r["res"] for r in got], float) - want) / np.abs(want)) < 1e-9


# ---------------------------------------------------------------- the cluster


@pytest.fixture
def cluster(helm_bin: Path, tmp_path: Path) -> Iterator[list[Pod]]:
    pods = run_pods(helm_bin, tmp_path, {"nats": {"replicas": 3}})
    yield pods
    stop_all([p.child for p in pods if p.child is not None])


def _stream_leader(urls: list[str]) -> str:
    async def ask() -> str:
        auth = admin_auth()
        nc = await nats.connect(urls, user=auth.user, password=auth.password,
                                inbox_prefix=auth.inbox_prefix)
        try:
            info = await nc.jsm().stream_info(f"FEDSTATS_{FED}_STATS")
            assert info.cluster is not None and info.config.num_replicas == 3
            return str(info.cluster.leader)
        finally:
            await nc.close()
    return asyncio.run(ask())


def test_a_federation_outlives_a_killed_server_of_the_rendered_cluster(
        cluster: list[Pod], local_nodes: Callable[..., LocalNodes]) -> None:
    urls = [p.url for p in cluster]
    # the operator's streams, replicated on the three servers
    eventually(lambda: asyncio.run(_ensure(",".join(urls), 3)), timeout=60,
               what="JetStream's cluster to accept R3 streams")
    clients = local_nodes(("admin", *PEERS), "c1", new_secret_key()).clients
    form(clients, ",".join(urls))
    pooled: list[np.ndarray] = []
    for who in ("admin", *PEERS):
        learn(clients, who, 40, pooled)
        clients[who].start_pulse(who)
    eventually(lambda: rows_at(clients["admin"], "admin") == 120, what="every row merged")

    leader = _stream_leader(urls)
    [victim] = [p for p in cluster if f"nats-{p.index}" == leader]
    victim.kill()  # kill -9 the statistics stream's leader, mid-federation

    learn(clients, "p1", 25, pooled)  # acknowledged after the loss: must arrive too
    eventually(lambda: rows_at(clients["admin"], "admin") == 145, timeout=60,
               what="the admin to merge what p1 learned after the server died")
    eventually(lambda: rows_at(clients["p2"], "p2") == 145, timeout=60,
               what="p2 (decentralized) to merge it as well")
    clients["admin"].full_sync("admin")
    eventually(lambda: all(int(clients[p].sync_stats(p)["sndCount"]) > 1 for p in PEERS),
               what="the peers to answer the full sync")
    assert rows_at(clients["admin"], "admin") == 145
    assert_exact(clients["admin"], pooled, "after-loss")


async def _ensure(url: str, replicas: int, ca: str | None = None) -> bool:
    try:
        await nats_admin.ensure_streams(url, admin_auth(ca),
                                        nats_admin.desired_streams(fed_body(replicas)))
    except nats_admin.NatsUnavailable:
        return False
    return True


# ---------------------------------------------------------------- TLS


def certificates(tmp: Path) -> dict[str, bytes]:
    """A CA and a server certificate for the Service's names (and loopback)."""
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("fedstats test CA"))
          .issuer_name(name("fedstats test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.DNSName(f"nats.{NAMESPACE}.svc"), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(name("nats")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {"ca.crt": ca.public_bytes(pem), "tls.crt": cert.public_bytes(pem),
            "tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())}


@pytest.fixture
def tls_server(helm_bin: Path, tmp_path: Path) -> Iterator[tuple[Pod, dict[str, bytes]]]:
    certs = certificates(tmp_path)
    [pod] = run_pods(helm_bin, tmp_path, {"nats": {"tls": {"enabled": True,
                                                           "secretName": "nats-tls"}}}, certs)
    yield pod, certs
    stop_all([pod.child] if pod.child else [])


def test_a_client_without_the_ca_is_refused_and_the_federation_forms_over_tls(
        tls_server: tuple[Pod, dict[str, bytes]], tmp_path: Path,
        local_nodes: Callable[..., LocalNodes]) -> None:
    pod, certs = tls_server
    url = f"tls://127.0.0.1:{pod.client_port}"
    # in NATS's own protocol: INFO says TLS is required; without the CA the handshake fails
    with socket.create_connection(("127.0.0.1", pod.client_port), timeout=5) as sock:
        info = sock.makefile("rb").readline()
        assert b'"tls_required":true' in info
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(sock, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", pod.client_port), timeout=5) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')  # no TLS at all
        answer = f.readline()  # the server hangs up (or says -ERR): never a PONG
        f.close()
    assert not answer.startswith(b"PONG"), answer
    # the operator's login check: over TLS with the CA, refused without it
    ca = certs["ca.crt"].decode()
    assert asyncio.run(nats_admin.can_log_in(url, admin_auth(ca)))
    assert not asyncio.run(nats_admin.can_log_in(url, admin_auth()))
    # the operator, trusting the CA from the Federation's caSecretRef, makes the streams
    assert asyncio.run(_ensure(url, 1, certs["ca.crt"].decode()))
    # the nodes trust it as the pod spec tells them to: SSL_CERT_FILE, the mounted ca.crt
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(certs["ca.crt"])
    env = {n: {"SSL_CERT_FILE": str(ca_file)} for n in ("admin", *PEERS)}
    clients = local_nodes(("admin", *PEERS), "c1", new_secret_key(), env).clients
    form(clients, url)
    pooled: list[np.ndarray] = []
    for who in ("admin", *PEERS):
        learn(clients, who, 30, pooled)
        clients[who].start_pulse(who)
    eventually(lambda: rows_at(clients["admin"], "admin") == 90, what="every row over TLS")
    assert_exact(clients["admin"], pooled, "over-tls")


# ---------------------------------------------------------------- what the chart grants


def test_the_auth_secret_is_the_one_secret_nats_reads_and_the_operator_patches(
        helm_bin: Path) -> None:
    objs = render(helm_bin, {}, namespace=NAMESPACE)
    sidecar = find(objs, "Role", "nats-authsync")["rules"]
    assert sidecar == [{"apiGroups": [""], "resources": ["secrets"],
                        "resourceNames": ["nats-auth"], "verbs": ["get", "list", "watch"]}]
    operator = find(objs, "Role", "fs-operator-nats-auth")["rules"]
    assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["nats-auth"],
            "verbs": ["get", "patch"]} in operator
    env = {e["name"]: e.get("value") for e in
           find(objs, "Deployment", "fs-operator")["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["FEDSTATS_OPERATOR_NATS_AUTH_SECRET"] == f"{NAMESPACE}/nats-auth"
    pod = find(objs, "StatefulSet", "nats")["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True and pod["serviceAccountName"] == "nats"
    assert [c["name"] for c in pod["initContainers"]] == ["auth-init"]
    assert [c["name"] for c in pod["containers"]] == ["nats", "authsync"]


def test_production_values_render_the_cluster_tls_and_auth(helm_bin: Path) -> None:
    values = yaml.safe_load((CHART / "values-production.yaml").read_text())
    objs = render(helm_bin, {**values, "federation": {"create": True}}, namespace=NAMESPACE)
    conf = find(objs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert conf.count("nats-headless.fedstats.svc:6222") == 3 and "tls {" in conf
    assert 'include "../nats-auth/auth.conf"' in conf
    assert find(objs, "StatefulSet", "nats")["spec"]["replicas"] == 3
    assert find(objs, "Certificate", "nats-tls")["spec"]["secretName"] == "nats-tls"
    nats_spec = find(objs, "Federation", "demo")["spec"]["nats"]
    assert nats_spec == {"url": "tls://nats.fedstats.svc:4222", "replicas": 3,
                         "tls": {"caSecretRef": {"name": "nats-tls", "key": "ca.crt"}}}


def test_an_exposed_nats_without_tls_is_refused_by_the_schema(helm_bin: Path) -> None:
    done = run_helm(helm_bin, "template", "fs", str(CHART), values={
        "nats": {"external": {"enabled": True}}}, check=False)
    assert done.returncode != 0 and "tls" in done.stderr.lower()
