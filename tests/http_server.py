"""A local HTTP server for download tests, with faults injected per path.

Tests cannot reach the network, and the failures worth testing (a 500 that heals, a body
cut short, a server that ignores Range) are hard to get from a real server on demand.
Each path is a ``Route``: a body plus a script of statuses, one per request (the last
repeats), extra headers (a redirect's Location, an ETag, a Content-Encoding), and
``If-Range`` honoured like a real server: a validator that no longer matches gets the
whole body (or ignored, like some servers and proxies). Every request is recorded
server-side, with its time, so tests can count retries, time them and check the Range and
If-Range headers that were sent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    statuses: list[int] = field(default_factory=lambda: [200])
    content_type: str = "application/octet-stream"
    honour_range: bool = True
    truncate: bool = False  # declare the full Content-Length, send half, close
    omit_length: bool = False  # no Content-Length: the client must count while streaming
    delay_s: float = 0.0  # wait before answering (timeouts)
    headers: dict[str, str] = field(default_factory=dict)  # Location, ETag, Content-Encoding
    trickle_s: float = 0.0  # pause between 1 KiB pieces of the body (a slow server)
    honour_if_range: bool = True  # False: serve the range whatever If-Range says
    etags: list[str] = field(default_factory=list)  # ETag per request (the last repeats)


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None
    if_range: str | None = None
    at: float = 0.0  # time.monotonic() when it arrived


class LocalServer:
    """``with LocalServer() as server: url = server.add("/a.gif", Route(body))``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # a client hanging up on purpose (size cap, timeout) is not an error worth printing
        self._httpd.handle_error = lambda request, client_address: None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.base_url + path

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for request in self.requests if request.path == path)

    def ranges(self, path: str) -> list[str | None]:
        with self._lock:
            return [request.range for request in self.requests if request.path == path]

    def if_ranges(self, path: str) -> list[str | None]:
        with self._lock:
            return [request.if_range for request in self.requests if request.path == path]

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [request.at for request in self.requests if request.path == path]

    def _record(self, path: str, range_header: str | None, if_range: str | None) -> int:
        """Record a request and return its 0-based number for that path."""
        with self._lock:
            number = sum(1 for request in self.requests if request.path == path)
            self.requests.append(Request(path, range_header, if_range, time.monotonic()))
            return number

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                number = server._record(
                    path, self.headers.get("Range"), self.headers.get("If-Range")
                )
                route = server.routes.get(path)
                if route is None:
                    self._send(404, b"not found", "text/plain")
                    return
                if route.delay_s:
                    time.sleep(route.delay_s)
                status = route.statuses[min(number, len(route.statuses) - 1)]
                if status != 200:
                    self._send(status, f"error {status}".encode(), "text/plain", route.headers)
                    return
                body, status, extra = route.body, 200, dict(route.headers)
                if route.etags:
                    extra["ETag"] = route.etags[min(number, len(route.etags) - 1)]
                range_header = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                unchanged = (
                    not route.honour_if_range
                    or if_range is None
                    or if_range in (extra.get("ETag"), extra.get("Last-Modified"))
                )
                if (
                    route.honour_range
                    and unchanged
                    and range_header
                    and range_header.startswith("bytes=")
                ):
                    start = int(range_header[len("bytes=") :].split("-", 1)[0])
                    if start >= len(route.body):
                        self._send(416, b"", "text/plain")
                        return
                    body, status = route.body[start:], 206
                    extra["Content-Range"] = (
                        f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
                    )
                self._send(status, body, route.content_type, extra, route)

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str,
                extra: dict[str, str] | None = None,
                route: Route | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if not (route and route.omit_length):
                    self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if route and route.truncate:
                    body = body[: len(body) // 2]
                if route and route.trickle_s:
                    for start in range(0, len(body), 1024):
                        self.wfile.write(body[start : start + 1024])
                        self.wfile.flush()
                        time.sleep(route.trickle_s)
                else:
                    self.wfile.write(body)
                    self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
