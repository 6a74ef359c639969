"""What every typed client shares: channels, deadlines, metadata, and turning failed calls
back into the project's exception classes (safetypairs.contract.errors), recovered from the status
code and the server's error-kind metadata."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import grpc
from google.protobuf.message import Message

from safetypairs.client.channel import ChannelOptions, open_channel
from safetypairs.contract.errors import ERROR_KIND_METADATA_KEY, SafetyPairsError, error_class
from safetypairs.contract.request_id import REQUEST_ID_METADATA_KEY, outgoing_request_id
from safetypairs.v1 import common_pb2

DEFAULT_OPTIONS = ChannelOptions()

ImageLike = bytes | str | os.PathLike[str]


def image_message(image: ImageLike, image_id: str | None = None) -> common_pb2.Image:
    """Bytes are sent as they are; a path is read (its name becomes the default id)."""
    if isinstance(image, bytes | bytearray | memoryview):
        return common_pb2.Image(data=bytes(image), id=image_id or "")
    path = Path(image)
    return common_pb2.Image(
        data=path.read_bytes(), id=image_id if image_id is not None else str(path)
    )


@dataclass(frozen=True)
class Call:
    """One RPC, protocol-neutral: which stub method, the request, how to read the answer.
    The sync and async clients differ only in how they run it."""

    method: str
    request: Message
    parse: Callable[[Any], Any]


def error_from_rpc(exc: grpc.RpcError) -> SafetyPairsError:
    """The project exception for a failed call (the RpcError stays as its __cause__)."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    kind = None
    request_id = None
    if hasattr(exc, "trailing_metadata"):
        for key, value in exc.trailing_metadata() or ():
            if key == ERROR_KIND_METADATA_KEY:
                kind = value
            elif key == REQUEST_ID_METADATA_KEY:
                request_id = value
    cls = error_class(kind, code)
    message = details or ""
    if cls is SafetyPairsError and code is not None:
        message = f"{code.name}: {message}"
    err = cls(message)
    err.request_id = request_id  # the id the service logged this call under
    err.__cause__ = exc
    return err


class ClientBase:
    """`timeout` is the default deadline per call in seconds; `metadata` goes with every call;
    `token` is sent as `authorization: Bearer <token>`; `credentials` (see `tls_credentials`)
    make the channel TLS. Subclasses name their gRPC service and stub."""

    _aio: ClassVar[bool]
    _service: ClassVar[str]
    _stub_class: ClassVar[type]

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        timeout: float | None = 10.0,
        options: ChannelOptions = DEFAULT_OPTIONS,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = tuple(metadata) + (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._channel = open_channel(
            target, [self._service], options, credentials=credentials, aio=self._aio
        )
        self._stub = self._stub_class(self._channel)

    def _invoke(self, call: Call, timeout: float | None) -> Any:
        method = getattr(self._stub, call.method)
        deadline = self.timeout if timeout is None else timeout
        return method(call.request, timeout=deadline, metadata=self._call_metadata())

    def _call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata of one call: the client's, plus the call's request id."""
        return (*self._metadata, (REQUEST_ID_METADATA_KEY, outgoing_request_id()))


class SyncClient(ClientBase):
    """Blocking calls."""

    _aio = False

    def _run(self, call: Call, timeout: float | None) -> Any:
        try:
            return call.parse(self._invoke(call, timeout))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(ClientBase):
    """asyncio calls."""

    _aio = True

    async def _run(self, call: Call, timeout: float | None) -> Any:
        try:
            return call.parse(await self._invoke(call, timeout))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
