"""Content-addressed blobs: local first, then peers; every byte checked against its hash.

Big blobs (operands, results) are files the store memory-maps, so a sandboxed worker
reads a 32 MiB matrix by its path and a result is hashed once, where it is made.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..compute import blob_hash, blob_refs, unpack
from ..errors import TaskError
from ..ledger.store import Store
from .framing import decode_frame, encode_frame

Fetcher = Callable[[str], Awaitable["bytes | None"]]


class FileBlob:
    """A blob waiting in a file (a worker's result): the store moves the file into place
    instead of copying its bytes; checking it maps the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._size = self.path.stat().st_size

    def __len__(self) -> int:
        return self._size

    def parts(self) -> list[Any]:
        if not self._size:
            return [b""]
        with open(self.path, "rb") as f:
            return [memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))]

    def __bytes__(self) -> bytes:
        return self.path.read_bytes()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class BlobStore:
    """Blobs named by SHA-256, kept by the node's store and fetched from peers on demand."""

    def __init__(self, store: Store, fetcher: Fetcher | None = None) -> None:
        self.store = store
        self.fetcher = fetcher

    def put(self, data: Any) -> str:
        """Keep bytes made here; returns their hash."""
        return self.store.put_new_blob(data)

    def put_named(self, hash_: str, data: Any) -> None:
        """Keep bytes that claim a name, after checking the claim."""
        if blob_hash(data) != hash_:
            if isinstance(data, FileBlob):
                data.discard()
            raise TaskError(f"blob does not match its hash {hash_[:16]}…")
        self.store.put_blob(hash_, data)

    def put_many(self, blobs: Mapping[str, Any], *, trusted: bool = False) -> None:
        """Keep several blobs. ``trusted`` skips re-hashing blobs this process named itself
        (ArrayBlob digests; a task's big operands are already stored by its Packer)."""
        for hash_, data in blobs.items():
            if trusted:
                self.store.put_blob(hash_, data)
            else:
                self.put_named(hash_, data)

    def local(self, hash_: str) -> Any:
        """The blob as a read-only buffer (memory-mapped when big), or None."""
        return self.store.blob_view(hash_)

    def path(self, hash_: str) -> Path | None:
        return self.store.blob_path(hash_)

    async def get(self, hash_: str) -> Any:
        data = self.local(hash_)
        if data is not None:
            return data
        if self.fetcher is not None:
            data = await self.fetcher(hash_)
            if data is not None and hashlib.sha256(data).hexdigest() == hash_:
                await asyncio.to_thread(self.store.put_blob, hash_, data)
                return data
        raise TaskError(f"blob {hash_[:16]}… is not available here or at any peer")

    # ---- values: a frame {"result": wire} naming its blobs ---------------------------------
    def put_value(self, wire: Any, blobs: Mapping[str, Any], *, trusted: bool = False) -> tuple[str, bytes]:
        """Keep a packed value: its blobs apart (each by its own hash), then a small frame
        holding the wire form. Returns (the frame's hash, the frame)."""
        self.put_many(blobs, trusted=trusted)
        frame = encode_frame({"result": wire})
        return self.put(frame), frame

    def local_wire(self, frame_hash: str) -> tuple[bool, Any, dict[str, Any]]:
        """(True, wire form, blobs it names) when the frame and its blobs are all here."""
        frame = self.local(frame_hash)
        if frame is None:
            return False, None, {}
        header, inline = decode_frame(bytes(frame))
        blobs: dict[str, Any] = dict(inline)
        for ref in blob_refs(header["result"]):
            if ref not in blobs:
                data = self.local(ref)
                if data is None:
                    return False, None, {}
                blobs[ref] = data
        return True, header["result"], blobs

    async def fetch_value(self, frame_hash: str) -> Any:
        """The value behind a frame hash, fetching the frame and its blobs from peers if need be."""
        header, inline = decode_frame(bytes(await self.get(frame_hash)))
        blobs: dict[str, Any] = dict(inline)
        for ref in blob_refs(header["result"]):
            if ref not in blobs:
                blobs[ref] = await self.get(ref)
        return unpack(header["result"], blobs, verify=False)
