"""Optional bearer-token authentication for both protocols, and TLS for the gRPC port.

Tokens come from a file (one per line; in Kubernetes a mounted Secret) and are compared in
constant time. Health, reflection and the HTTP probes and metrics are exempt unless the
`auth_exempt_probes` setting is off.
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from safetypairs.contract.errors import ERROR_KIND_METADATA_KEY, Unauthenticated
from safetypairs.contract.request_id import REQUEST_ID_METADATA_KEY, incoming_request_id
from safetypairs.serving.http import error_body
from safetypairs.serving.logs import log_request
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import ServingSettings, SettingsError

log = logging.getLogger(__name__)

GRPC_PROBE_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
HTTP_PROBE_PATHS = ("/livez", "/readyz", "/metrics", "/healthz")


class TokenAuth:
    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    @classmethod
    def from_file(cls, path: str) -> TokenAuth:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise SettingsError(f"cannot read auth tokens file {path}: {exc.strerror}") from None
        tokens = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not tokens:
            raise SettingsError(f"auth tokens file {path} holds no token")
        return cls(tokens)

    def check(self, authorization: str | None) -> None:
        """Raise Unauthenticated unless `authorization` is "Bearer <a known token>"."""
        if not authorization:
            raise Unauthenticated("missing bearer token (authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the authorization header must be 'Bearer <token>'")
        given = token.strip().encode()
        match = False
        for known in self._tokens:  # no early exit: time does not depend on which token
            match |= hmac.compare_digest(given, known)
        if not match:
            raise Unauthenticated("invalid bearer token")


def token_auth(settings: ServingSettings) -> TokenAuth | None:
    return TokenAuth.from_file(settings.auth_tokens_file) if settings.auth_tokens_file else None


class GrpcAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid token with UNAUTHENTICATED, before they reach a handler."""

    def __init__(self, auth: TokenAuth, exempt_probes: bool, metrics: ServiceMetrics) -> None:
        self._auth = auth
        self._exempt = GRPC_PROBE_PREFIXES if exempt_probes else ()
        self._metrics = metrics
        # One refusal handler per (method, reason): a bounded set, built once.
        self._refusals: dict[tuple[str, str], grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(self._exempt):
            return handler
        metadata = dict(details.invocation_metadata or ())
        try:
            self._auth.check(metadata.get("authorization"))
        except Unauthenticated as exc:
            key = (details.method, exc.message)
            if key not in self._refusals:
                self._refusals[key] = self._refusal(handler, details.method, exc)
            return self._refusals[key]
        return handler

    def _refusal(
        self, handler: grpc.RpcMethodHandler, method: str, exc: Unauthenticated
    ) -> grpc.RpcMethodHandler:
        """A handler that refuses the call: counted, logged with its request id, which it
        echoes like any other answer."""
        name = method.rsplit("/", 1)[-1]

        async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rid = incoming_request_id(context.invocation_metadata())
            self._metrics.record("grpc", name, exc, 0.0)
            log_request(self._metrics.service, "grpc", name, exc, 0.0, rid)
            await context.abort(
                exc.grpc_code,
                exc.message,
                trailing_metadata=(
                    (ERROR_KIND_METADATA_KEY, exc.kind),
                    (REQUEST_ID_METADATA_KEY, rid),
                ),
            )

        return _handler_like(handler, abort)


def _handler_like(
    handler: grpc.RpcMethodHandler, abort: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
) -> grpc.RpcMethodHandler:
    """`abort` served as a request-streaming handler with `handler`'s response codec.

    grpc.aio receives a unary request's whole message (up to the message limit) before it
    calls the handler, however the call is to end; a request-streaming handler reads messages
    only when it asks for them, so this one answers from the metadata alone and the message is
    never buffered (the transport drops what the client still sends once the stream is closed).
    On the wire a unary and a streaming call look the same; the client sees UNAUTHENTICATED."""

    async def refuse(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await abort(None, context)

    async def refuse_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await abort(None, context)
        yield  # pragma: no cover - never reached; makes this an async generator

    kw = {"request_deserializer": None, "response_serializer": handler.response_serializer}
    if handler.unary_unary or handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **kw)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **kw)


def _authorization(scope: Scope) -> str | None:
    """The Authorization header's value. Header bytes are latin-1 on the wire (RFC 9110 leaves
    anything else opaque): decoding them as UTF-8 failed on any other byte and hung the
    request, so they are read as latin-1, and a token with such bytes simply does not match."""
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            return value.decode("latin-1")
    return None


class HttpAuthMiddleware:
    """ASGI middleware: 401 with the mapped error body unless the bearer token is valid; each
    refusal is counted in the metrics like gRPC's (`metrics` gives the worker's, and
    `api_names` maps a route to the method label the handlers use; others count as `other`)."""

    def __init__(
        self,
        app: ASGIApp,
        auth: TokenAuth,
        exempt_probes: bool = True,
        metrics: Callable[[], ServiceMetrics] | None = None,
        api_names: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.exempt = HTTP_PROBE_PATHS if exempt_probes else ()
        self.metrics = metrics
        self.api_names = dict(api_names or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        try:
            self.auth.check(_authorization(scope))
        except Unauthenticated as exc:
            response = JSONResponse(
                error_body(exc),
                status_code=exc.http_status.value,
                headers={"WWW-Authenticate": "Bearer"},
            )
            if self.metrics is not None:
                method = self.api_names.get(scope["path"], "other")
                self.metrics().record("http", method, exc, 0.0)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def server_credentials(settings: ServingSettings) -> grpc.ServerCredentials | None:
    """TLS for the gRPC port when a certificate and key are set; mutual TLS when a client CA
    is set too."""
    if not (settings.tls_cert_file or settings.tls_key_file or settings.tls_client_ca_file):
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise SettingsError("TLS needs both SAFETYPAIRS_TLS_CERT_FILE and SAFETYPAIRS_TLS_KEY_FILE")
    try:
        cert = Path(settings.tls_cert_file).read_bytes()
        key = Path(settings.tls_key_file).read_bytes()
        ca = Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    except OSError as exc:
        raise SettingsError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def protect_http(
    service: Any,
    settings: ServingSettings,
    metrics: Callable[[], ServiceMetrics],
    api_names: Mapping[str, str],
) -> None:
    """Put a BentoML service class's HTTP side behind the bearer tokens, when they are set;
    refusals are counted in the worker's `metrics()`."""
    auth = token_auth(settings)
    if auth is not None:
        service.add_asgi_middleware(
            HttpAuthMiddleware,
            auth=auth,
            exempt_probes=settings.auth_exempt_probes,
            metrics=metrics,
            api_names=api_names,
        )


def http_tls_config(settings: ServingSettings) -> dict[str, Any]:
    """BentoML service config that serves the HTTP port with the gRPC port's TLS, requiring
    client certificates signed by the client CA when one is set (mutual TLS), so configuring
    TLS never leaves HTTP open in plaintext by accident. Empty when TLS is off, or when
    `http_plaintext` says a proxy in front terminates TLS for HTTP."""
    if not (settings.tls_cert_file and settings.tls_key_file):
        return {}  # TLS off (or half set: server_credentials refuses that at start-up)
    if settings.http_plaintext:
        log.warning(
            "TLS is configured but %s is set: the HTTP port serves plaintext",
            "SAFETYPAIRS_HTTP_PLAINTEXT",
        )
        return {}
    tls: dict[str, Any] = {
        "enabled": True,
        "certfile": settings.tls_cert_file,
        "keyfile": settings.tls_key_file,
    }
    if settings.tls_client_ca_file:
        tls |= {"ca_certs": settings.tls_client_ca_file, "cert_reqs": int(ssl.CERT_REQUIRED)}
    return {"ssl": tls}
