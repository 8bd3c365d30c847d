"""``fleetlog metrics``: the journal's figures for Prometheus, printed, written for
node_exporter's textfile collector, or served (``ops.metrics``; docs/notifications.md)."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from fleetlog.engine.cli import output, paths
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.session import Session
from fleetlog.errors import FleetlogError, UsageError
from fleetlog.limits import escape

if TYPE_CHECKING:
    from fleetlog.engine.ops.metrics import FleetMetrics

FORMATS = ("openmetrics", "prometheus")
_LISTEN = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]+)):(?P<port>[0-9]{1,5})"
)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6); port 0 picks a free one."""
    m = _LISTEN.fullmatch(text)
    if m is None or int(m.group("port")) > 65535:
        raise UsageError(
            f"--listen {text[:60]!r}: expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"
        )
    return m.group("v6") or m.group("host"), int(m.group("port"))


def metrics(
    ctx: typer.Context,
    out: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="Write to FILE (replaced whole, atomically) instead of stdout: point it into "
        "node_exporter's --collector.textfile.directory as NAME.prom and run it from cron.",
        show_default=False,
    ),
    listen: str = typer.Option(
        None,
        "--listen",
        help="Serve the metrics on http://HOST:PORT/metrics until SIGINT/SIGTERM, read "
        "from the journal afresh for every scrape (the scraper's Accept header picks "
        "OpenMetrics or the classic text format).",
        show_default=False,
    ),
    fmt: str = typer.Option(
        None,
        "--format",
        help="openmetrics or prometheus (the classic text format). [default: openmetrics; "
        "prometheus with --output, the only format node_exporter's textfile collector "
        "reads]",
        show_default=False,
    ),
) -> None:
    """Prometheus metrics from the journal: resources by kind and state, in progress and
    needing attention, transitions and steps by outcome, step durations, drift findings."""
    session: Session = ctx.obj
    if out is not None and listen is not None:
        raise UsageError("--output and --listen: give one")
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format {fmt[:40]!r}: choose from {', '.join(FORMATS)}")
    if fmt is not None and listen is not None:
        raise UsageError("--format does not apply to --listen: the scraper's Accept header picks")
    address = parse_listen(listen) if listen is not None else None
    paths.check_output(out, "--output")
    session.for_reading()

    def read() -> FleetMetrics:
        from fleetlog.engine.ops.metrics import measure

        return measure(session.journal, session.registry)

    if address is not None:
        _ = session.journal  # opened (and its integrity checked) before serving
        _serve(read, *address)
        return
    from fleetlog.engine.ops.metrics import render

    text = render(read, fmt or ("prometheus" if out is not None else "openmetrics"))
    if out is not None:
        paths.write_file(out, text)
    else:
        sys.stdout.write(text.decode("utf-8"))


def _serve(read: Any, host: str, port: int) -> None:
    """Serve until a signal; each scrape reads the journal. One thread serves every
    scrape, one at a time: it holds one reading connection to the journal (a thread per
    request would open one per scrape), and a client that stalls is dropped after
    ``Handler.timeout``."""
    import signal
    import socket
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from prometheus_client.exposition import choose_encoder

    from fleetlog.engine.ops.metrics import collector_registry

    registry = collector_registry(read)

    class Handler(BaseHTTPRequestHandler):
        timeout = 30
        protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404, "only /metrics is served here")
                return
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            try:
                body = encoder(registry)
            except FleetlogError as exc:  # the journal cannot be read now: say so, go on
                output.warn(f"fleetlog: warning: metrics: {escape(str(exc))}")
                self.send_error(503, "the journal cannot be read now")
                return
            except Exception as exc:  # a bug: one line, and the server goes on
                output.warn(
                    f"fleetlog: warning: metrics: internal error: {type(exc).__name__}: "
                    f"{escape(str(exc))} (this is a bug)"
                )
                self.send_error(500, "internal error")
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """No access log: a scrape every 15 s is not news."""

    class Server(HTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A client that went away mid-answer is not worth a traceback."""

    try:
        server = Server((host, port), Handler)
    except OSError as e:
        raise UsageError(f"--listen {host}:{port}: {e.strerror or e}") from None
    bound = server.server_address
    bound_host = bound[0].decode() if isinstance(bound[0], bytes) else str(bound[0])
    bound_port = bound[1]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    output.warn(f"fleetlog: serving metrics on http://{shown}:{bound_port}/metrics")
    sys.stderr.flush()
    stop = threading.Event()
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda _s, _f: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="fleetlog-metrics", daemon=True)
    thread.start()
    try:
        while not stop.wait(0.25):  # short slices: the handler runs in the main thread
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.shutdown()
        server.server_close()
    output.warn("fleetlog: metrics: stopped by signal")


COMMANDS = {"metrics": metrics}


def register(app: typer.Typer) -> None:
    add_commands(app, COMMANDS)
