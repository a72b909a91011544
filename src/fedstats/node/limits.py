"""The data limits of one node, as one small frozen value the layers below `Settings` can take.

`Settings` holds one `Limits` (its fields read from `FEDSTATS_MAX_*` variables or
`fedstats node --limit name=value`); the engine, the federation's grammar and the service
are handed this value, never `Settings`, so they stay importable on their own (the
operator imports the contract grammar, which may not pull the node's numeric stack: this
module imports nothing but the standard library).

Each limit bounds the work a request can cause, and is checked *before* that work: the
column counts before a category is expanded into indicator columns, the statistics cells
before any moment is computed, the contract's size before it is parsed. A refusal is
`LimitExceeded`, whose message names the limit and its value (the API answers 413).
docs/limits.md lists them all with what a client sees.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


class LimitExceeded(ValueError):
    """A request over one of the node's limits; `limit` is the field's name."""

    def __init__(self, limit: str, value: int, what: str) -> None:
        super().__init__(f"{what}: over the node's limit {limit}={value}")
        self.limit = limit
        self.value = value


@dataclass(frozen=True)
class Limits:
    """What one request (or one project) may ask of the node. Defaults are documented in
    docs/limits.md; every field is a positive int."""

    # columns of one learn/forget/predict after T/S/L expansion (and attributes before it)
    max_request_columns: int = 2_000
    # columns of one project after expansion: its accumulator is O(columns²)
    max_project_columns: int = 4_000
    # float64 values of one accumulator: (1 + binary columns) × columns². Each binary
    # column (a B attribute, a category's indicator) keeps the moments of the rows where
    # it is 1, a columns² matrix of its own; 2^24 values are 128 MiB
    max_statistics_cells: int = 1 << 24
    # distinct values of one T/S attribute (or elements of one L attribute) in a request
    max_categories: int = 200
    # characters of an attribute name, and of a category value or list element
    max_name_chars: int = 256
    max_value_chars: int = 256
    # a PSR contract: rules, and UTF-8 bytes of all its lines (it travels in one NATS
    # control message, which must fit the server's max_payload: 1 MB on a stock server)
    max_contract_rules: int = 1_000
    max_contract_bytes: int = 64 * 1024
    # characters of a federation's name (it becomes a NATS subject token and stream name)
    max_fed_name_chars: int = 128

    # --- the transport: enforced by the node's own HTTP and WebSocket protocol classes
    # (api/server.py) before a request reaches any facade, the same for all of them.
    # bytes of a request line and its headers, and how many header fields
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    # seconds from a connection's opening (or a request's first byte) to its last header
    header_timeout_s: int = 10
    # a body must arrive within body_timeout_s plus one second per min_body_rate bytes
    body_timeout_s: int = 20
    min_body_rate: int = 1024
    # seconds an idle keep-alive connection is kept between requests
    keep_alive_s: int = 5
    # seconds a connection answered before its body arrived goes on reading (and dropping)
    # the rest of that body, so the client can finish sending and read the answer
    linger_s: int = 5
    # open connections (HTTP and WebSocket), node-wide and per client address
    max_connections: int = 1024
    max_connections_per_address: int = 64
    # bytes of bodies (and WebSocket messages) an address that has not yet signed a request
    # may have in flight at once, and all such addresses together; an address is trusted for
    # trust_s seconds after its last request whose signature verified
    max_unverified_bytes_per_address: int = 64 * 1024 * 1024
    max_unverified_bytes: int = 128 * 1024 * 1024
    trust_s: int = 900

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {f.name} must be a positive integer, not {value!r}")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def replace(self, **changes: int) -> Limits:
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ValueError(
                f"unknown limit(s) {', '.join(unknown)}: known are {', '.join(self.names())}"
            )
        return Limits(**{**{n: getattr(self, n) for n in self.names()}, **changes})


def statistics_cells(columns: int, binary: int) -> int:
    """The float64 values an accumulator of `columns` columns, `binary` of them binary, holds
    in its co-moment matrices (the dominant term)."""
    return (1 + binary) * columns * columns


def check_cells(limits: Limits, columns: int, binary: int, what: str) -> None:
    """LimitExceeded when `columns` columns (`binary` binary) are over a limit of `limits`."""
    cells = statistics_cells(columns, binary)
    if cells > limits.max_statistics_cells:
        raise LimitExceeded(
            "max_statistics_cells",
            limits.max_statistics_cells,
            f"{what} would need (1 + {binary} binary) × {columns}² = {cells:,} statistics cells",
        )
