"""Content-addressed blobs: local first, then peers; every byte checked against its hash."""

from __future__ import annotations

import hashlib
from typing import Awaitable, Callable, Iterable, Mapping

from ..errors import TaskError
from ..ledger.store import Store

Fetcher = Callable[[str], Awaitable["bytes | None"]]


class BlobStore:
    """Blobs named by SHA-256, kept in the node's database and fetched from peers on demand."""

    def __init__(self, store: Store, fetcher: Fetcher | None = None) -> None:
        self.store = store
        self.fetcher = fetcher
        self._cache: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        hash_ = hashlib.sha256(data).hexdigest()
        self.put_named(hash_, data)
        return hash_

    def put_named(self, hash_: str, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != hash_:
            raise TaskError(f"blob does not match its hash {hash_[:16]}…")
        self.store.put_blob(hash_, data)

    def put_many(self, blobs: Mapping[str, bytes]) -> None:
        for hash_, data in blobs.items():
            self.put_named(hash_, data)

    def local(self, hash_: str) -> bytes | None:
        return self.store.get_blob(hash_)

    async def get(self, hash_: str) -> bytes:
        data = self.store.get_blob(hash_)
        if data is not None:
            return data
        if self.fetcher is not None:
            data = await self.fetcher(hash_)
            if data is not None and hashlib.sha256(data).hexdigest() == hash_:
                self.store.put_blob(hash_, data)
                return data
        raise TaskError(f"blob {hash_[:16]}… is not available here or at any peer")

    async def get_many(self, hashes: Iterable[str]) -> dict[str, bytes]:
        return {h: await self.get(h) for h in hashes}
