"""Ports for children told their port before they start: below the kernel's ephemeral
range (so no outgoing connection or bind(0) takes them first), free, never given twice."""

from __future__ import annotations

import socket

from fedstats_harness.ports import _ephemeral_low, free_port


def test_free_ports_are_below_the_ephemeral_range_bindable_and_distinct() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(20000 <= p < _ephemeral_low() for p in ports)
    for p in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
            s.listen(1)
