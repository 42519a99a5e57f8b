"""Test support: a Redox sandbox (redox/sandbox/) served from a thread of the test process."""

import threading

from redox.sandbox.server import SandboxServer, make_server
from redox.sandbox.state import SandboxState


def start_in_thread(host="127.0.0.1", port=0, state: SandboxState | None = None, *, quiet=True) -> SandboxServer:
    """Start a sandbox in a daemon thread; returns the server. Stop it with
    server.shutdown() and server.server_close()."""
    server = make_server(host, port, state, quiet=quiet)
    # A short poll interval so shutdown() returns promptly between tests.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server


def base_url(server: SandboxServer) -> str:
    return server.origin()
