"""A loopback TCP forwarder that a test can shut, cutting live connections too: how the
suite makes a real Vault unreachable for one process while others keep using it."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit


class Gate:
    """Forwards 127.0.0.1:<own port> (`addr`) to the host and port of `target` (a URL) while
    open; shut, it refuses new connections and cuts the live ones."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 8200)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.addr = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.is_open = threading.Event()
        self.live: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if not self.is_open.is_set():
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            self.live += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def open(self) -> None:
        self.is_open.set()

    def shut(self) -> None:
        self.is_open.clear()
        for s in self.live:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.live.clear()

    def stop(self) -> None:
        self.shut()
        self.server.close()
