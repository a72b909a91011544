"""What the operator and delivery tests do with kubectl: apply examples, read, wait.

`manifest` loads one of `examples/` (without its storage: nothing here provisions volumes),
`apply` gives each Federation its own streams on a shared nats-server (named after the
namespace), `wait` is `kubectl wait` with the object's status in the failure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import orjson
import yaml
from nats.js.errors import NotFoundError

from .controlplane import REPO, ControlPlane

EXAMPLES = REPO / "examples"
WAIT = "90s"


def manifest(name: str, nats_url: str | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    obj["spec"].pop("storage", None)  # no volume provisioner here: PVCs would never bind
    obj["spec"].get("admin", {}).pop("storage", None)
    if nats_url:
        obj["spec"]["nats"]["url"] = nats_url
    obj["spec"].update(spec)
    return obj


def apply(cp: ControlPlane, ns: str, obj: dict[str, Any]) -> None:
    if obj["kind"] == "Federation":
        # Tests share one nats-server: each federation gets streams of its own.
        obj["spec"].setdefault("federationName", ns)
    cp.kubectl("apply", "-n", ns, "-f", "-", input=orjson.dumps(obj).decode())


def get(cp: ControlPlane, ns: str, *what: str) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(cp.kubectl("get", "-n", ns, *what, "-o", "json").stdout)
    return result


def wait(cp: ControlPlane, ns: str, what: str, condition: str = "condition=Ready",
         timeout: str = WAIT) -> None:
    done = cp.kubectl("wait", "-n", ns, f"--for={condition}", f"--timeout={timeout}", what,
                      check=False)
    if done.returncode != 0:
        status = cp.kubectl("get", "-n", ns, what, "-o", "jsonpath={.status}", check=False)
        raise AssertionError(f"{what} never reached {condition}: {status.stdout}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


async def _stream(url: str, name: str) -> dict[str, Any] | None:
    nc = await nats.connect(url)
    try:
        info = await nc.jsm().stream_info(name)
        return {"max_bytes": info.config.max_bytes, "subjects": info.config.subjects,
                "storage": info.config.storage}
    except NotFoundError:
        return None
    finally:
        await nc.close()


def stream(url: str, ns: str, which: str = "STATS") -> dict[str, Any] | None:
    """The stream of the federation made in namespace `ns` (see `apply`)."""
    return asyncio.run(_stream(url, f"FEDSTATS_{ns}_{which}"))
