"""The CRDs against the real API server: examples pass, broken manifests are refused.

Each refusal must name the field at fault, as users read it in `kubectl`'s answer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import yaml

from fedstats_harness.controlplane import REPO, ControlPlane

EXAMPLES = REPO / "examples"
Manifest = dict[str, Any]


def example(name: str) -> Manifest:
    return yaml.safe_load((EXAMPLES / name).read_text())


def create(cp: ControlPlane, ns: str, obj: Manifest) -> tuple[int, str]:
    done = cp.kubectl("create", "-n", ns, "-f", "-", input=orjson.dumps(obj).decode(),
                      check=False)
    return done.returncode, done.stderr


def test_the_example_manifests_are_accepted_with_defaults_filled_in(control_plane, namespace):
    for name in ("federation.yaml", "peer-cpu.yaml", "peer-gpu.yaml", "psrcontract.yaml"):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / name))
    fed = orjson.loads(control_plane.kubectl("get", "-n", namespace, "federation", "demo",
                                             "-o", "json").stdout)
    assert fed["spec"]["admin"]["customerId"] == "operator"
    assert fed["spec"]["admin"]["ingress"]["enabled"] is True


def test_short_names_and_the_fedstats_category_list_the_resources(control_plane, namespace):
    for name in ("federation.yaml", "peer-cpu.yaml", "psrcontract.yaml"):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / name))
    listed = control_plane.kubectl("get", "-n", namespace, "fedstats", "-o", "name").stdout
    assert set(listed.split()) == {"federation.fedstats.io/demo", "peer.fedstats.io/hospital-a",
                                   "psrcontract.fedstats.io/demo-privacy"}
    table = control_plane.kubectl("get", "-n", namespace, "fed").stdout
    assert table.split("\n")[0].split() == ["NAME", "TOPOLOGY", "SCHEDULE", "READY", "AGE"]
    assert "decentralized" in table and "m30" in table
    assert "hospital-a" in control_plane.kubectl("get", "-n", namespace, "fpeer").stdout
    assert "demo-privacy" in control_plane.kubectl("get", "-n", namespace, "psr").stdout


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def edit(obj: Manifest) -> None:
        *parents, last = path.split(".")
        node = obj
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return edit


# (example, edit, words the refusal must contain)
REFUSED = {
    "bad schedule": ("federation.yaml", _set("spec.syncSchedule", "weekly"),
                     ["spec.syncSchedule", "should match"]),
    "zero schedule": ("federation.yaml", _set("spec.syncSchedule", "m0"),
                      ["spec.syncSchedule", "positive count"]),
    "unknown topology": ("federation.yaml", _set("spec.topology", "star"),
                         ["spec.topology", "Unsupported value"]),
    "timeout out of bounds": ("federation.yaml", _set("spec.requestTimeoutSeconds", 0),
                              ["spec.requestTimeoutSeconds"]),
    "http nats url": ("federation.yaml", _set("spec.nats.url", "http://nats:4222"),
                      ["spec.nats.url"]),
    "memory not a quantity": ("federation.yaml", _set("spec.streamMaxMemory", "lots"),
                              ["spec.streamMaxMemory"]),
    "ingress without host": ("federation.yaml", _set("spec.admin.ingress.host", None),
                             ["spec.admin.ingress.host", "required when the ingress"]),
    "admin without image": ("federation.yaml", _set("spec.admin.image", None),
                            ["spec.admin.image", "Required value"]),
    "peer with both refs": ("peer-cpu.yaml", _set("spec.inviteSecretRef", {"name": "inv"}),
                            ["exactly one of spec.federationRef or spec.inviteSecretRef"]),
    "peer with no ref": ("peer-cpu.yaml", _set("spec.federationRef", None),
                         ["exactly one of spec.federationRef or spec.inviteSecretRef"]),
    "gpu settings on a cpu peer": ("peer-cpu.yaml", _set("spec.gpu", {"count": 1}),
                                   ["spec.gpu", "only with spec.localType: gpu"]),
    "zero gpus": ("peer-gpu.yaml", _set("spec.gpu.count", 0), ["spec.gpu.count"]),
    "unknown local type": ("peer-cpu.yaml", _set("spec.localType", "tpu"),
                           ["spec.localType", "Unsupported value"]),
    "bad toleration effect": ("peer-gpu.yaml",
                              _set("spec.gpu.tolerations", [{"key": "k", "effect": "Never"}]),
                              ["spec.gpu.tolerations[0].effect"]),
    "unknown send action": ("psrcontract.yaml", _set("spec.sendAction", "drop"),
                            ["spec.sendAction", "Unsupported value"]),
    "rules of comments only": ("psrcontract.yaml", _set("spec.rules", "# nothing\n\n"),
                               ["spec.rules", "holds no rule"]),
    "contract without federation": ("psrcontract.yaml", _set("spec.federationRef", None),
                                    ["spec.federationRef", "Required value"]),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_a_manifest_breaking_the_schema_is_refused_naming_the_field(control_plane, namespace,
                                                                    case):
    name, edit, words = REFUSED[case]
    obj = copy.deepcopy(example(name))
    edit(obj)
    rc, err = create(control_plane, namespace, obj)
    assert rc != 0, f"{case} was accepted"
    for word in words:
        assert word in err, f"{word!r} not in: {err}"


IMMUTABLE = {
    "topology": ("federation.yaml", "spec.topology", "centralized", "spec.topology is immutable"),
    "federation name": ("federation.yaml", "spec.federationName", "other",
                        "spec.federationName is immutable"),
    "peer federation": ("peer-cpu.yaml", "spec.federationRef", {"name": "other"},
                        "spec.federationRef is immutable"),
    "contract federation": ("psrcontract.yaml", "spec.federationRef", {"name": "other"},
                            "spec.federationRef is immutable"),
}


@pytest.mark.parametrize("case", list(IMMUTABLE), ids=list(IMMUTABLE))
def test_immutable_fields_cannot_change_after_creation(control_plane, namespace, case):
    name, path, value, message = IMMUTABLE[case]
    obj = example(name)
    assert create(control_plane, namespace, obj)[0] == 0
    _set(path, value)(obj)
    done = control_plane.kubectl("apply", "-n", namespace, "-f", "-",
                                 input=orjson.dumps(obj).decode(), check=False)
    assert done.returncode != 0
    assert message in done.stderr


def test_mutable_fields_can_change(control_plane, namespace):
    obj = example("federation.yaml")
    assert create(control_plane, namespace, obj)[0] == 0
    obj["spec"]["syncSchedule"] = "h3"
    obj["spec"]["streamMaxMemory"] = "128Mi"
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=orjson.dumps(obj).decode())
