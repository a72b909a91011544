"""Loopback ports for children that must be told their port before they start.

A server that can bind port 0 and say which port it got is started so (nats-server: see
`natsproc`; the in-process node: a socket bound before uvicorn starts). Some children
cannot: a `fedstats node` is reached at the URL its parent computed, etcd's address is
written into kube-apiserver's flags, a pod's port into the Service URLs handed to the
operator. For those, `free_port` picks a port that is free now from *below* the kernel's
ephemeral range (`net.ipv4.ip_local_port_range`): the ports the kernel hands to outgoing
connections and to `bind(0)` are never those, so the many clients of a test run cannot take
it before the child binds it (they did: a liveness port in use, the operator exiting), and
it never hands the same port twice in one process. Another process choosing ports the
same way could still race for it, a window the harness accepts only there.

`refusing_port` is the other need of tests: an address where certainly nothing listens.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_given: set[int] = set()
_lock = threading.Lock()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that no one holds at this moment, outside the ephemeral range."""
    low, high = 20000, _ephemeral_low() - 1
    with _lock:
        for _ in range(200) if high > low else ():
            port = random.randint(low, high)
            if port in _given:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _given.add(port)
            return port
        with socket.socket() as s:  # no room below the ephemeral range: the kernel's pick
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
