"""Settings of one node: where it listens, where it keeps its data, whom it trusts.

A plain dataclass rather than a settings framework: the CLI and the tests build it
directly, and every field has a default a test can run with. `max_body_bytes` bounds
every request body (REST and WebSocket message): a larger one is refused with 413
before it is read whole. The default, 256 MB, holds ~1.3 M rows of a 20-column JSON
DataFrame; bulk loads beyond it go in several requests (or CSV/Arrow, which are denser).

A body is read before its signature can be checked, so `max_body_bytes_reading` (512 MB)
bounds the bytes of all bodies being read at once: a request that would go over it is
answered 503 with `Retry-After` before a byte is buffered (unsigned floods cannot take
the node's memory). WebSocket messages have their own, smaller limit,
`max_ws_message_bytes` (16 MB, uvicorn's `ws_max_size`): a socket streams many messages,
so a large load is many messages, not one.

`limits` bounds the *data* a request may carry — columns after category expansion,
distinct values per category, statistics cells, name and value lengths, contract rules
and bytes, federation name length — as one frozen `Limits` (fedstats.node.limits), which
is what the engine, the grammar and the service are handed (they never see `Settings`).
Each is read from `FEDSTATS_<NAME>` (e.g. `FEDSTATS_MAX_CATEGORIES=500`) or
`fedstats node --limit max_categories=500`; docs/limits.md lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .limits import Limits

MB = 1024 * 1024


@dataclass
class Settings:
    """Everything `create_app` needs; built by the `fedstats node` command or by tests."""

    data_dir: Path = Path("./fedstats-data")
    customers_file: Path | None = None  # JSON {customer id: Base64 secret key}
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 256 * MB
    max_body_bytes_reading: int = 512 * MB  # all request bodies being read at once
    max_ws_message_bytes: int = 16 * MB
    # A learn appends its batch's statistics to a per-project log; every this many
    # entries the project is checkpointed (one snapshot, log truncated), bounding replay.
    checkpoint_every: int = 64
    # Threads for CPU work (parsing, statistics, model builds), off the event loop.
    worker_threads: int = 8
    # The engine of projects created without `type` (env FEDSTATS_ENGINE=numpy|cupy, as
    # the operator sets it on GPU peers); `gpu` on a node without one falls back to cpu.
    default_engine: str = "cpu"
    # What one request or project may ask of the node's CPU, memory and disk (see above).
    limits: Limits = field(default_factory=Limits)

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "node.db"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then `FEDSTATS_*` environment variables, then explicit overrides.

        `limits` may be a `Limits` (replacing them) or a dict of changes to the env's.
        """
        env: dict[str, object] = {}
        if os.environ.get("FEDSTATS_CUSTOMERS"):
            env["customers_file"] = Path(os.environ["FEDSTATS_CUSTOMERS"])
        if os.environ.get("FEDSTATS_DATA_DIR"):
            env["data_dir"] = Path(os.environ["FEDSTATS_DATA_DIR"])
        if os.environ.get("FEDSTATS_MAX_BODY_BYTES"):
            env["max_body_bytes"] = int(os.environ["FEDSTATS_MAX_BODY_BYTES"])
        if os.environ.get("FEDSTATS_MAX_BODY_BYTES_READING"):
            env["max_body_bytes_reading"] = int(os.environ["FEDSTATS_MAX_BODY_BYTES_READING"])
        if os.environ.get("FEDSTATS_MAX_WS_MESSAGE_BYTES"):
            env["max_ws_message_bytes"] = int(os.environ["FEDSTATS_MAX_WS_MESSAGE_BYTES"])
        limits = {n: int(os.environ[f"FEDSTATS_{n.upper()}"]) for n in Limits.names()
                  if os.environ.get(f"FEDSTATS_{n.upper()}")}
        if limits:
            env["limits"] = Limits().replace(**limits)
        engine = os.environ.get("FEDSTATS_ENGINE", "").strip().lower()
        if engine:
            env["default_engine"] = {"numpy": "cpu", "cupy": "gpu"}.get(engine, engine)
        changes = overrides.pop("limits", None)
        if isinstance(changes, dict):  # `--limit name=value`: on top of the env's
            base = env.get("limits", Limits())
            assert isinstance(base, Limits)
            env["limits"] = base.replace(**changes)
        elif changes is not None:
            env["limits"] = changes
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)  # type: ignore[arg-type]
