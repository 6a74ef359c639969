"""Whole-object reads and writes under one object-store prefix (fsspec: s3://, gs://, ...),
with every store failure turned into one typed error that names the location.

- Wrong or missing credentials: Unauthenticated, naming where the store looks for them.
- A bucket that does not exist: NotFound.
- Anything else (the store unreachable, a timeout, a server error): StorageError.

Conditional writes make the dataset's commits and its writer lease safe against a second
writer: `put_new` creates an object only where none is (If-None-Match: * on S3), `put_replacing`
replaces one only if it is still the version read (If-Match: its ETag). They are exact on S3
and S3-API stores that honour those headers (AWS since 2024, MinIO, moto); on other fsspec
stores they check first and then write, which a writer racing in between can defeat: there
the lease is advisory.

fsspec and the store's own package (s3fs for s3://, gcsfs for gs://) are imported when a URL
is used: `pip install safetypairs[store]`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from safetypairs.contract.errors import NotFound, SafetyPairsError, StorageError, Unauthenticated

_CREDENTIALS_HELP = {
    "s3": "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS or the workload identity",
    "gcs": "GOOGLE_APPLICATION_CREDENTIALS or the workload identity",
}
_NO_BUCKET = ("NoSuchBucket", "bucket does not exist", "specified bucket")


def _error_code(exc: BaseException) -> str:
    """The store's error code (botocore's Error.Code), when the error carries one."""
    for e in (exc, exc.__cause__):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    return ""


def precondition_failed(exc: BaseException) -> bool:
    """Whether a conditional write was refused because the object is there / has changed."""
    if isinstance(exc, FileExistsError):
        return True
    if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EINVAL and "recondition" in str(exc)


def store_error(exc: BaseException, url: str, protocol: str) -> SafetyPairsError:
    """The typed error for a failed store call on `url`."""
    text = f"{type(exc).__name__}: {exc}".strip()
    code = _error_code(exc)
    if isinstance(exc, PermissionError) or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        where = _CREDENTIALS_HELP.get(protocol, "the store's standard environment or config")
        return Unauthenticated(
            f"{url}: the store refused the credentials or access ({text}); they come from {where}"
        )
    if code == "NoSuchBucket" or (
        isinstance(exc, FileNotFoundError) and any(s in str(exc) for s in _NO_BUCKET)
    ):
        return NotFound(f"{url}: the bucket does not exist ({text}); create it first")
    return StorageError(f"{url}: the object store failed ({text})")


class StoreIO:
    """Objects under `url` (a prefix), addressed by paths relative to it."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        try:
            import fsspec
        except ImportError:
            raise StorageError(
                f"{url}: object storage needs fsspec and the store's package "
                "(pip install 'safetypairs[store]')"
            ) from None
        self.url = url.rstrip("/")
        # A client of its own: fsspec's instance cache keys on the arguments only, so a cached
        # client would keep the endpoint and credentials the environment gave an earlier one
        # (seen in one test process: a second S3 server, the first one's port still used).
        self._options = {"skip_instance_cache": True, **(storage_options or {})}
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self._options)
        except ImportError as exc:  # the store's own package (s3fs, gcsfs) is missing
            raise StorageError(f"{url}: {exc}") from None
        except ValueError as exc:  # an unknown protocol
            raise StorageError(f"{url}: not a storage location fsspec knows ({exc})") from None
        protocol = self.fs.protocol
        self.protocol = protocol if isinstance(protocol, str) else protocol[0]
        self.conditional = self.protocol in ("s3", "s3a")

    def separate(self) -> StoreIO:
        """The same location through a client of its own (its own connections): the lease's
        renewals must not queue behind a writer's hundreds of concurrent reads."""
        return StoreIO(self.url, self._options)

    def where(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    @contextmanager
    def errors(self, rel: str = "") -> Iterator[None]:
        """Raise the typed error of any store failure in the block, naming `rel`."""
        try:
            yield
        except SafetyPairsError:
            raise
        except FileNotFoundError as exc:
            error = store_error(exc, self.where(rel) if rel else self.url, self.protocol)
            if isinstance(error, NotFound):
                raise error from None
            raise
        except Exception as exc:  # the store's own exception classes (botocore, aiohttp)
            raise store_error(exc, self.where(rel) if rel else self.url, self.protocol) from None

    def read(self, rel: str) -> bytes:
        """An object's bytes; FileNotFoundError when there is none."""
        with self.errors(rel):
            return self.fs.cat_file(self._path(rel))

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Several objects at once (concurrently, where the store can)."""
        if not rels:
            return {}
        paths = [self._path(r) for r in rels]
        with self.errors():
            found = self.fs.cat(paths, on_error="raise")
        return {rel: found[path] for rel, path in zip(rels, paths, strict=True)}

    def list(self, rel_dir: str) -> list[str]:
        """The objects under `rel_dir`, relative to the prefix, sorted; fresh, not cached."""
        base = self._path(rel_dir)
        with self.errors(rel_dir):
            self.fs.invalidate_cache(base)
            if not self.fs.exists(self.root):
                self._check_bucket()
            try:
                found = self.fs.find(base)
            except FileNotFoundError:
                return []
        cut = len(self.root) + 1
        return sorted(p[cut:] for p in found)

    def _check_bucket(self) -> None:
        """Listing an empty prefix says nothing about the bucket; this asks the store."""
        bucket = self.root.split("/", 1)[0]
        if self.protocol in ("s3", "s3a", "gs", "gcs") and not self.fs.exists(bucket):
            raise NotFound(f"{self.url}: the bucket {bucket!r} does not exist; create it first")

    def exists(self, rel: str) -> bool:
        with self.errors(rel):
            return self.fs.exists(self._path(rel))

    def put(self, rel: str, data: bytes) -> None:
        """Write a whole object (replacing one of that name)."""
        with self.errors(rel):
            self.fs.pipe_file(self._path(rel), data)

    def put_new(self, rel: str, data: bytes) -> bool:
        """Create the object only where none is; False when one was there already."""
        path = self._path(rel)
        with self.errors(rel):
            if not self.conditional:
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, data)
                return True
            try:
                self.fs.pipe_file(path, data, mode="create")
            except Exception as exc:
                if precondition_failed(exc):
                    return False
                raise
            return True

    def etag(self, rel: str) -> str | None:
        """The object's version tag (None when it does not exist)."""
        with self.errors(rel):
            self.fs.invalidate_cache(self._path(rel))
            try:
                info = self.fs.info(self._path(rel))
            except FileNotFoundError:
                return None
        return str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("size"))

    def put_replacing(self, rel: str, data: bytes, etag: str) -> bool:
        """Replace the object only if it is still the version `etag`; False if it changed."""
        path = self._path(rel)
        with self.errors(rel):
            if not self.conditional:
                if self.etag(rel) != etag:
                    return False
                self.fs.pipe_file(path, data)
                return True
            try:
                self.fs.pipe_file(path, data, IfMatch=etag)
            except Exception as exc:
                if precondition_failed(exc) or isinstance(exc, FileNotFoundError):
                    return False
                raise
            return True

    def delete(self, rel: str) -> None:
        with self.errors(rel), suppress(FileNotFoundError):
            self.fs.rm_file(self._path(rel))
