"""A fault-injecting webhook receiver on loopback, for the delivery tests and drills.

Each request is answered by the next behaviour in the queue (the last one repeats):
``ok`` (204), ``500``, ``timeout`` (answers after ``hold`` seconds), ``reset`` (closes the
socket without answering), ``slow`` (headers, then a body one byte per ``hold`` / 10 s),
``429`` (with ``Retry-After``), ``410``, ``302`` (to http://127.0.0.1:<port>/admin). Every
request is recorded with its headers and body; ``/admin`` requests are recorded separately.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int = 0
    behaviours: list[str] = field(default_factory=lambda: ["ok"])
    hold: float = 3.0
    retry_after: str = "7"
    requests: list[Received] = field(default_factory=list)
    admin_hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mgdiary"

    def next_behaviour(self) -> str:
        with self.lock:
            if len(self.behaviours) > 1:
                return self.behaviours.pop(0)
            return self.behaviours[0]

    def script(self, *behaviours: str) -> None:
        with self.lock:
            self.behaviours = list(behaviours)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        reset = False

        def finish(self) -> None:
            if self.reset:
                return  # the descriptor is gone: nothing to flush or close
            super().finish()

        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            if self.path.startswith("/admin"):
                with receiver.lock:
                    receiver.admin_hits += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            if self.path.startswith("/admin"):
                with receiver.lock:
                    receiver.admin_hits += 1
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            behaviour = receiver.next_behaviour()
            if behaviour == "reset":
                # SO_LINGER 0, then close the descriptor itself (the handler's file objects
                # still hold the socket object): the kernel answers with a TCP RST.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                os.close(self.connection.detach())
                self.close_connection = True
                self.reset = True
                return
            if behaviour == "timeout":
                time.sleep(receiver.hold)
                behaviour = "ok"
            if behaviour == "slow":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                try:
                    for _ in range(1000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(receiver.hold / 10)
                except OSError:
                    pass
                return
            status, headers = {
                "ok": (204, {}),
                "500": (500, {}),
                "429": (429, {"Retry-After": receiver.retry_after}),
                "410": (410, {}),
                "302": (302, {"Location": f"http://127.0.0.1:{receiver.port}/admin"}),
            }[behaviour]
            payload = b"" if status == 204 else f"status {status}".encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

    return Handler


@contextmanager
def running_receiver(*behaviours: str, hold: float = 3.0) -> Iterator[Receiver]:
    receiver = Receiver(behaviours=list(behaviours) or ["ok"], hold=hold)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
