"""Loopback ports for children that must be told their port before they start.

A server that can bind port 0 and say which port it got is started so (nats-server: see
`natsproc`; the in-process node: a socket bound before uvicorn starts). Some children
cannot: a `fedstats node` is reached at the URL its parent computed, etcd's address is
written into kube-apiserver's flags, a pod's port into the Service URLs handed to the
operator. For those, `free_port` asks the kernel for a port that is free now; another
process could take it before the child binds it, a window the harness accepts only there.

`refusing_port` is the other need of tests: an address where certainly nothing listens.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that no one holds at this moment."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def refusing_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port bound but not listening for as long as the block runs: connects are refused.

    Unlike a port that was free a moment ago, no other process can start listening there.
    """
    with socket.socket() as s:
        s.bind((host, 0))
        yield int(s.getsockname()[1])
