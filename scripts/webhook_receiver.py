"""A reference receiver for mgdiary's webhooks, for sites to copy (checklist D25).

What a receiver must do, and this one does:

1. verify the Standard Webhooks signature over the exact body bytes with the endpoint's
   ``whsec_`` secret (the ``standardwebhooks`` package), refusing a timestamp more than five
   minutes off (replays);
2. acknowledge quickly (2xx) and process each ``webhook-id`` once: mgdiary delivers at least
   once, so the same message may arrive again after a timeout or a crash; a duplicate is
   acknowledged and not processed again;
3. answer 4xx only for messages it will never accept (a bad signature: 401); answer 5xx (or
   time out) when it cannot process now - mgdiary retries later. Answering 410 tells mgdiary to
   disable the endpoint.

Run it: ``python scripts/webhook_receiver.py --secret whsec_... --port 8900`` (standard
library HTTP server; put it behind your TLS terminator). ``process`` prints the event; replace
it with what your site does (page the safety desk, file into the safety database ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import standardwebhooks

#: How long a processed webhook-id is remembered: longer than mgdiary's whole retry schedule
#: would be ideal (about 30 h by default); a database table is the production choice.
REMEMBER_SECONDS = 48 * 3600
MAX_BODY = 256 * 1024


class Receiver:
    """Verifies, deduplicates and hands each new event to ``process`` (thread-safe)."""

    def __init__(
        self,
        secret: str,
        process: Callable[[dict[str, Any]], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.webhook = standardwebhooks.Webhook(secret)
        self.process = process
        self.clock = clock
        self.seen: OrderedDict[str, float] = OrderedDict()
        self.lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        while self.seen and next(iter(self.seen.values())) < now - REMEMBER_SECONDS:
            self.seen.popitem(last=False)

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        """The status to answer: 204 processed or duplicate, 401 refused."""
        try:
            event = self.webhook.verify(body, headers)
        except standardwebhooks.WebhookVerificationError:
            return 401
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        now = self.clock()
        with self.lock:
            self._forget_old(now)
            if msg_id in self.seen:
                return 204  # a redelivery: acknowledged, not processed again
            self.seen[msg_id] = now
        try:
            self.process(event)
        except Exception:
            with self.lock:
                self.seen.pop(msg_id, None)  # not processed: let the retry through
            return 503
        return 204


def serve(receiver: Receiver, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_response(413)
                self.end_headers()
                return
            status = receiver.handle(self.rfile.read(length), dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", required=True, help="the endpoint's whsec_ secret")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args(argv)

    def process(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    serve(Receiver(args.secret, process), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
