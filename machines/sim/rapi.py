"""The simulated Ganeti cluster's RAPI over loopback HTTP.

``GET /2/instances[?bulk=1]`` and ``GET /2/jobs[?bulk=1]`` answered from a master's
state in a sim world, with the JSON the real RAPI returns (``tools/gnt_job.py``
``rapi_get``): what ``fleetlog reconcile --listing ganeti_vm=ganeti_rapi_instances:URL``
reads when the operator points it at a cluster. Each request reads the world afresh, so
drift injected meanwhile shows at once.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from fleetlog.engine.backends.sim import World
from fleetlog.machines.sim.tools.gnt_job import rapi_get


class RapiServer:
    """A RAPI on ``127.0.0.1`` (an ephemeral port unless given); use as a context
    manager. ``fail_with`` makes every answer that HTTP status (a RAPI that is down)."""

    def __init__(self, world_path: str, master: str, port: int = 0) -> None:
        self.world_path, self.master = world_path, master
        self.fail_with: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, path: str) -> tuple[int, object]:
        if self.fail_with is not None:
            return self.fail_with, {"code": self.fail_with, "message": "injected"}
        world = World(self.world_path)
        try:
            g = world.host_state(self.master).get("ganeti")
        finally:
            world.close()
        if g is None:
            return 502, {"code": 502, "message": f"{self.master} is not a Ganeti master"}
        return rapi_get(g, path)

    def __enter__(self) -> RapiServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()
