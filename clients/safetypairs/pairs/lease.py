"""The writer lease of a dataset in an object store: one writer per dataset, as the flock is
for a local folder, for stores that have no locks.

The lease is one object, `lease.json`: {"owner": host:pid:random, "expires": unix time}. A
writer takes it when there is none (a create-only write) or when the one there has expired (a
write conditional on the version it read), and renews it from a background thread every third
of its duration. A kill leaves the lease behind, but it expires: a writer that finds a lease
watches it; one that is renewed meanwhile has a live owner, and the newcomer is refused
(FolderInUse, naming the owner); one that runs out is taken over. So a pod restarted after a
kill waits at most one lease duration, and a second writer running beside the first is
refused within a third of one. Before each commit the writer checks that its lease still
holds (not taken over, not expired unrenewed): a writer cut off from the store or paused past
its lease stops instead of writing beside its successor.

Expiry compares wall clocks of different machines: keep them in sync (NTP), and the duration
well above their skew.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from safetypairs.contract.errors import FolderInUse, SafetyPairsError, StorageError
from safetypairs.pairs.store_io import StoreIO

LEASE_NAME = "lease.json"
DEFAULT_LEASE_S = 30.0
_POLL_S = 0.5


@dataclass(frozen=True)
class _Seen:
    owner: str
    expires: float
    etag: str


class Lease:
    def __init__(self, store: StoreIO, duration_s: float = DEFAULT_LEASE_S) -> None:
        if duration_s <= 0:
            raise ValueError("a lease lasts a positive number of seconds")
        self.store, self.duration_s = store.separate(), duration_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etag: str | None = None
        self._expires = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    def _body(self) -> tuple[bytes, float]:
        expires = time.time() + self.duration_s
        return json.dumps({"owner": self.owner, "expires": expires}).encode(), expires

    def _seen(self) -> _Seen | None:
        etag = self.store.etag(LEASE_NAME)
        if etag is None:
            return None
        try:
            data = json.loads(self.store.read(LEASE_NAME))
            return _Seen(str(data["owner"]), float(data["expires"]), etag)
        except FileNotFoundError:  # released between the two calls
            return None
        except (ValueError, KeyError, TypeError):  # not ours to read: treat as expired
            return _Seen("unreadable lease", 0.0, etag)

    def acquire(self) -> None:
        """Take the lease (waiting out an expiring one), or raise FolderInUse."""
        watched: _Seen | None = None
        while True:
            seen = self._seen()
            body, expires = self._body()
            if seen is None:
                taken = self.store.put_new(LEASE_NAME, body)
            elif seen.expires < time.time():
                taken = self.store.put_replacing(LEASE_NAME, body, seen.etag)
            else:
                renewed = watched is not None and watched.owner == seen.owner
                if renewed and watched.expires != seen.expires:  # renewed while watched: alive
                    raise self._in_use(seen)
                watched = seen
                time.sleep(min(_POLL_S, max(0.0, seen.expires - time.time()) + 0.05))
                continue
            if taken:
                self._etag, self._expires = self.store.etag(LEASE_NAME), expires
                break
            watched = None  # another writer moved first: look again
        self._thread = threading.Thread(target=self._renew_loop, name="lease", daemon=True)
        self._thread.start()

    def _in_use(self, seen: _Seen) -> FolderInUse:
        until = time.strftime("%H:%M:%S UTC", time.gmtime(seen.expires))
        return FolderInUse(
            f"{self.store.url} is being written by another process ({seen.owner}, lease "
            f"renewed until {until}); one writer per dataset: wait for it to finish or write "
            "to another location"
        )

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration_s / 3):
            try:
                self.renew()
            except SafetyPairsError:  # the store is unreachable: `check` decides at commit
                continue

    def renew(self) -> None:
        with self._mutex:
            if self._lost or self._etag is None:
                return
            body, expires = self._body()
            if self.store.put_replacing(LEASE_NAME, body, self._etag):
                self._etag, self._expires = self.store.etag(LEASE_NAME), expires
            else:
                self._lost = "another writer took the lease over"

    def check(self) -> None:
        """Raise unless the lease is still this writer's: call before each commit. A lease
        due for renewal (the renewing thread was starved, or the store slow) is renewed here
        first: the write is conditional on the version this writer last wrote, so it
        succeeds exactly when nobody took the lease over meanwhile."""
        if time.time() >= self._expires - self.duration_s / 3:
            self.renew()
        with self._mutex:
            lost = self._lost
            if lost is None and time.time() >= self._expires:
                lost = "it could not be renewed before it expired"
        if lost:
            raise StorageError(
                f"{self.store.url}: this writer lost its lease ({lost}); stopping so that "
                "two writers never commit side by side (run the command again to resume)"
            )

    def release(self) -> None:
        """Stop renewing and delete the lease (when it is still this writer's)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            mine, self._etag = self._etag is not None and not self._lost, None
        if mine:
            try:
                if self._seen_owner() == self.owner:
                    self.store.delete(LEASE_NAME)
            except SafetyPairsError:  # unreachable now: the lease expires by itself
                pass

    def _seen_owner(self) -> str | None:
        seen = self._seen()
        return seen.owner if seen else None
