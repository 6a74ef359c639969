"""The review page's local web server (standard library http.server, one thread a request).

    GET  /                 the page (static/page.html, app.js, app.css: no CDN, no inline code)
    GET  /api/queue        the reviewer's candidates and their standing decisions (queue.py)
    GET  /images/<sha>.<ext>   an image, refused (409, named) when its bytes do not hash to it
    POST /api/decision     {"pair", "decision", "reason", "note"} -> appended to the review log

Bound to 127.0.0.1 unless told otherwise; bound elsewhere, every request must carry the token
printed in the URL (?token=, or the X-Review-Token header), compared in constant time. A POST
must be JSON with the X-Review header, which a page on another origin cannot send without a
CORS preflight this server never grants. Responses carry a Content-Security-Policy allowing
only this origin's own script and images.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from safetypairs.contract.errors import InvalidInput, TamperedFile
from safetypairs.contract.review_record import append_review, review
from safetypairs.pairs.dataset import PairDataset
from safetypairs.review.queue import Queue, reviewable

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
STATIC = {
    "/": ("page.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
MAX_BODY = 16 * 1024
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'"


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, dataset: Path, queue: Queue, host: str, port: int) -> None:
        self.dataset = dataset
        self.queue = queue
        self.token = None if host in LOOPBACK else secrets.token_urlsafe(24)
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/" + (f"?token={self.token}" if self.token else "")


class Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the UI
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        given = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        given = self.headers.get("X-Review-Token") or given
        return hmac.compare_digest(given.encode(), token.encode())

    def do_GET(self) -> None:
        if not self._authorized():
            return self._error(HTTPStatus.FORBIDDEN, "missing or wrong token")
        path = urlsplit(self.path).path
        try:
            if path in STATIC:
                name, kind = STATIC[path]
                data = resources.files("safetypairs.review").joinpath("static", name).read_bytes()
                return self._send(HTTPStatus.OK, data, kind)
            if path == "/favicon.ico":
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            if path == "/api/queue":
                return self._json(HTTPStatus.OK, self.server.queue.build())
            if path.startswith("/images/"):
                rel = path[1:]
                # Read without following links, checked against the hash in its name.
                data = PairDataset.read(self.server.dataset).read_image(rel)
                kind = IMAGE_TYPES.get(Path(rel).suffix, "application/octet-stream")
                return self._send(HTTPStatus.OK, data, kind)
        except TamperedFile as exc:
            return self._error(HTTPStatus.CONFLICT, exc.message)
        except InvalidInput as exc:
            return self._error(HTTPStatus.NOT_FOUND, exc.message)
        self._error(HTTPStatus.NOT_FOUND, f"no such page {path}")

    def do_POST(self) -> None:
        if not self._authorized():
            return self._error(HTTPStatus.FORBIDDEN, "missing or wrong token")
        if urlsplit(self.path).path != "/api/decision":
            return self._error(HTTPStatus.NOT_FOUND, "no such endpoint")
        if self.headers.get("X-Review") != "1" or not self.headers.get(
            "Content-Type", ""
        ).startswith("application/json"):
            return self._error(HTTPStatus.FORBIDDEN, "a decision must be JSON with X-Review: 1")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "decision too large")
        try:
            body = json.loads(self.rfile.read(length) or b"null")
            if not isinstance(body, dict):
                raise InvalidInput("a decision must be a JSON object")
            pair = body.get("pair")
            ds = PairDataset.read(self.server.dataset)
            if pair not in {r.id for r in reviewable(ds)}:
                raise InvalidInput(f"no reviewable pair {pair!r} in the dataset")
            record = review(
                str(pair),
                self.server.queue.reviewer,
                str(body.get("decision", "")),
                str(body.get("reason") or ""),
                str(body.get("note") or ""),
            )
        except (ValueError, InvalidInput) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else f"not JSON: {exc}"
            return self._error(HTTPStatus.BAD_REQUEST, message)
        try:
            append_review(self.server.dataset, record)
        except OSError as exc:
            message = f"could not write the review log: {exc.strerror}"
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, message)
        self._json(HTTPStatus.OK, {"recorded": asdict(record)})


def make_server(
    dataset: str | Path, reviewer: str, assign: int | None, host: str, port: int
) -> ReviewServer:
    root = Path(dataset)
    PairDataset.read(root)  # a clear error now for a folder that is not a dataset
    if assign is not None and assign < 1:
        raise InvalidInput(f"--assign must be at least 1, not {assign}")
    try:
        return ReviewServer(root, Queue(root, reviewer, assign), host, port)
    except OSError as exc:
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from None
