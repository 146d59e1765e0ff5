"""A tiny HTTP(S) server on 127.0.0.1 that speaks just enough of the Elasticsearch API.

Used where a real engine cannot show a behaviour (TLS failures, product headers) and to time
the shipper's own cost. ``handler`` decides the reply; the default answers ``GET /`` like
Elasticsearch 9 and ``_bulk`` with "all created".
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], Any]]

INFO = {
    "name": "node-1",
    "cluster_name": "test",
    "version": {"number": "9.1.0", "build_flavor": "default"},
    "tagline": "You Know, for Search",
}


def default_handler(
    method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], Any]:
    product = {"X-Elastic-Product": "Elasticsearch"}
    if path.startswith("/_bulk"):
        n = body.count(b"\n") // 2
        return 200, product, {"errors": False, "items": [{"create": {"status": 201}}] * n}
    if path == "/":
        return 200, product, INFO
    return 404, product, {"error": {"type": "not_found", "reason": path}, "status": 404}


class LocalServer:
    def __init__(self, handler: Handler = default_handler, tls: tuple[str, str] | None = None):
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.command, self.path, headers))
                status, extra, reply = outer.handler(self.command, self.path, headers, body)
                data = reply if isinstance(reply, bytes) else orjson.dumps(reply)
                self.send_response(status)
                self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
