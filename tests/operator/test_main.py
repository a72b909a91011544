"""`fedstats operator`'s command line: what runs when no option is given."""

from __future__ import annotations

import subprocess
import sys

from fedstats.operator.main import parser


def test_defaults_watch_all_namespaces_standalone_with_liveness_and_metrics():
    args = parser().parse_args([])
    assert (args.namespace, args.peering) == ([], None)
    assert args.liveness == "http://0.0.0.0:8081/healthz"
    assert args.metrics_port == 9090


def test_namespaces_and_peering_are_taken_as_given():
    args = parser().parse_args(["-n", "a", "-n", "b", "--peering", "fedstats"])
    assert (args.namespace, args.peering) == (["a", "b"], "fedstats")


def test_the_module_runs_as_a_program():
    done = subprocess.run([sys.executable, "-m", "fedstats.operator", "--help"],
                          capture_output=True, text=True, check=True)
    assert "--peering" in done.stdout
