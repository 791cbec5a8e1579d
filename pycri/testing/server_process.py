"""pycri-server as a child process that a test can kill -9 and start again.

What a crash test needs: the server in a process of its own (so that
``SIGKILL`` loses its memory and nothing else), on a socket in a directory
of the test's, its output kept in ``server.log`` there for the failure
message.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pycri.client import CRIClient

__all__ = ["ServerProcess"]

#: seconds the server gets to listen, and to exit on SIGTERM
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0


class ServerProcess:
    """``python -m pycri.server.main --shim SHIM`` on ``<directory>/cri.sock``.

    ``options`` are the shim's (``-O key=value``), ``args`` more of the
    server's own; streaming (Exec, Attach, PortForward) only if asked for.
    """

    def __init__(
        self,
        shim: str,
        directory: Path,
        options: dict[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        streaming: bool = False,
    ) -> None:
        self.shim = shim
        self.sock = directory / "cri.sock"
        self.log = directory / "server.log"
        self.options = dict(options or {})
        self.args = list(args)
        self.streaming = streaming
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CRIClient:
        """Start it (again) and return a client that has seen it ready."""
        self.sock.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "pycri.server.main", "--shim", self.shim]
        for key, value in self.options.items():
            argv += ["-O", f"{key}={value}"]
        argv += ["--listen", f"unix://{self.sock}", *self.args]
        if not self.streaming:
            argv.append("--no-streaming")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.sock.exists():
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "pycri-server did not start"
            time.sleep(0.05)
        client = CRIClient(f"unix://{self.sock}", timeout=120)
        client.wait_ready()
        return client

    def kill9(self) -> int:
        """SIGKILL it; its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> int | None:
        """SIGTERM it and wait (TimeoutExpired after STOP_TIMEOUT); its exit status, if started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode
