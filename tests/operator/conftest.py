"""The operator tests' settings: its timers made short enough for a test's patience.

The control plane, `cluster`, `namespace` and `nats_server` fixtures are the suite's own
(tests/conftest.py). The variables are read when `fedstats.operator.handlers` is imported
(by the in-process KopfRunner), so they are set before any test runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("FEDSTATS_OPERATOR_RESYNC_SECONDS", "2")
os.environ.setdefault("FEDSTATS_OPERATOR_RETRY_SECONDS", "1")
os.environ.setdefault("FEDSTATS_OPERATOR_FINALIZER_ATTEMPTS", "2")
