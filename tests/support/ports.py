"""Free loopback ports for servers a test starts itself (never a fixed port)."""

from __future__ import annotations

import socket


def free_port(below: int = 65536) -> int:
    """A free port under `below` (a Redis Cluster node also listens on its port + 10000)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < below:
            return port
