"""HTTP side of request ids and the access log: an ASGI middleware that takes the caller's
`X-Request-ID` (or makes one), echoes it in the response and logs one line per request, under
the method and status the request metrics count it by, with its path.
Probe and metrics paths are echoed but not logged: kubelets and Prometheus call them every few
seconds."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safetypairs.contract.request_id import REQUEST_ID_HEADER, new_request_id, usable
from safetypairs.serving.auth import HTTP_PROBE_PATHS
from safetypairs.serving.logs import log_request
from safetypairs.serving.metrics import watch_http_call

_HEADER = REQUEST_ID_HEADER.lower().encode()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(_HEADER, b"").decode("latin-1")
        rid = given if usable(given) else new_request_id()
        started = time.perf_counter()
        status = 500  # what the client sees when the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, rid.encode())]}
            await send(message)

        call = watch_http_call()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["path"] not in HTTP_PROBE_PATHS:
                seconds = time.perf_counter() - started
                # As the request metrics count it; a call no handler counted (an unknown
                # path, BentoML's own validation) under "other" and its response's status.
                method, outcome = call.get("method", "other"), call.get("status", status)
                log_request(self.service, "http", method, outcome, seconds, rid, scope["path"])


def observe_http(service_class: Any, service: str) -> None:
    """Give a BentoML service class's HTTP side request ids and the access log."""
    service_class.add_asgi_middleware(RequestIdMiddleware, service=service)
