"""``gatedrag corpus serve``: a local index over HTTP, in the hosted Infini-gram API's format.

Many workers (processes, machines on a private network) can then share one index, and the same
:class:`~gatedrag.corpus.client.InfiniGramClient` talks to this server or to the hosted API.
``POST /`` takes an API request (see :mod:`gatedrag.corpus.api`); ``GET /`` describes the index
(documents, tokens, tokenizer and its fingerprint). Bound to 127.0.0.1 unless told otherwise.
A bad request gets ``{"error": ...}`` with status 400, an engine failure status 500; the server
keeps serving either way.

Example::

    from gatedrag.corpus.server import make_server
    server = make_server("/path/to/index", port=0)       # port 0: any free port
    print(server.server_address)
    server.serve_forever()
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gatedrag.corpus.api import Caps, QueryHandler
from gatedrag.corpus.local import LocalIndex
from gatedrag.errors import CorpusIndexError
from gatedrag.paths import user_path

MAX_BODY_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 30.0
"""Seconds a connection may stay silent (mid-request or idle between requests) before it is closed."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    timeout = REQUEST_TIMEOUT_S  # a client that stops sending (half a request, an idle keep-alive) is dropped
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: CorpusServer

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") not in ("", "/info"):
            self._send(404, {"error": f"no such path {self.path}; POST queries to /"})
            return
        self._send(200, self.server.handler.info())

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413 if length > 0 else 400, {"error": f"request body must be 1 to {MAX_BODY_BYTES} bytes"})
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            self._send(400, {"error": f"the request body is not JSON: {err}"})
            return
        try:
            response = self.server.handler.handle(payload)
        except Exception as err:  # an engine failure must not take the server down
            self._send(500, {"error": f"internal error: {type(err).__name__}: {err}"})
            return
        self._send(400 if "error" in response else 200, response)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class CorpusServer(ThreadingHTTPServer):
    """A threading HTTP server holding one :class:`QueryHandler`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 reset clients when a few dozen connect at once

    def __init__(self, address: tuple[str, int], handler: QueryHandler, *, verbose: bool = False):
        super().__init__(address, _Handler)
        self.handler, self.verbose = handler, verbose

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or timed out is its own business; anything else is printed."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start_background(self) -> threading.Thread:
        """Serve on a daemon thread (for tests and notebooks); stop with ``shutdown()``."""
        thread = threading.Thread(target=self.serve_forever, name="gatedrag-corpus-server", daemon=True)
        thread.start()
        return thread


def make_server(
    index: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8737,
    name: str | None = None,
    caps: Caps | None = None,
    verbose: bool = False,
    load_to_ram: bool = False,
) -> CorpusServer:
    """Open ``index`` (failing early on a missing or broken one) and bind a server to it."""
    local = LocalIndex(index, load_to_ram=load_to_ram)
    local.engine  # noqa: B018  (open now: a broken index fails here, not on the first request)
    handler = QueryHandler(local, name=name or user_path(index, CorpusIndexError).resolve().name, caps=caps)
    return CorpusServer((host, port), handler, verbose=verbose)


__all__ = ["MAX_BODY_BYTES", "REQUEST_TIMEOUT_S", "CorpusServer", "make_server"]
