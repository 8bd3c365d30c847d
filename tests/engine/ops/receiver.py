"""A real webhook receiver on loopback for the notification tests: an ``http.server`` in
a thread that records every POST (headers and raw body) and answers with the statuses
it is told to, in order (200 once the list runs out)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: How long a test waits for deliveries before it fails as hung (not a timing assertion).
HANG_GUARD = 60.0


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: bytes) -> bool:
        """The check a receiver makes (docs/notifications.md): HMAC-SHA256 of the raw
        body, compared in constant time, and the signed ``sent_at`` equal to the
        timestamp header."""
        given = self.headers.get("x-fleetlog-signature", "")
        wanted = "sha256=" + hmac.new(secret, self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(given, wanted) and str(self.json()["sent_at"]) == (
            self.headers.get("x-fleetlog-timestamp")
        )


class Receiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.posts: list[Post] = []
        self.answered: list[int] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append(
                        Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver.answered.append(status)
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/fleet-token-path"

    def wait_for(self, n: int) -> list[Post]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.posts) >= n, timeout=HANG_GUARD)
            assert len(self.posts) >= n, f"only {len(self.posts)} of {n} posts arrived"
            return list(self.posts)

    def delivered(self) -> list[Post]:
        """The posts answered 2xx."""
        with self._cond:
            return [p for p, s in zip(self.posts, self.answered, strict=True) if s < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class Blackhole:
    """A loopback port that accepts connections (the kernel's backlog) and never
    answers: a receiver that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def close(self) -> None:
        self.sock.close()
