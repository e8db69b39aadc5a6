"""Content-addressed blobs: local first, then peers; every byte checked against its hash.

Big blobs (operands, results) are files the store memory-maps, so a sandboxed worker
reads a 32 MiB matrix by its path and a result is hashed once, where it is made. Blobs are
named as `blob_names` says (``b3t:`` piece trees from 1 MiB up, SHA-256 below); frames, which
events name as ``result_hash`` / ``payload_hash`` / ``config_blob``, keep SHA-256 names.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..blob_names import PieceHasher, check, hasher_for
from ..compute import blob_refs, unpack
from ..errors import TaskError
from ..ledger.store import BIG_BLOB, Store
from .framing import decode_frame, encode_frame

# Fills a sink with blob ``hash`` from some peer; True once the sink holds bytes matching it.
Fetcher = Callable[[str, "BlobSink"], Awaitable[bool]]


class FileBlob:
    """A blob waiting in a file (a worker's result): the store moves the file into place
    instead of copying its bytes; checking it maps the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._size = self.path.stat().st_size
        self.checked: str | None = None  # the hash this node computed of the file, once it has
        self.leaves: bytes | None = None  # its b3t leaves, when they were hashed on the way (the store keeps them)

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


class BlobSink:
    """Where a blob fetched from a peer lands: each piece is hashed as it arrives and, once the
    blob is big, written straight to a temporary file beside the store's blobs, so a 32 MiB
    operand is never held whole in memory nor read a second time to be checked. ``keep``
    stores it (a rename) only if it matches its name."""

    def __init__(self, store: Store, hash_: str) -> None:
        self.store, self.hash = store, hash_
        self._h = hasher_for(hash_)
        self._buf = bytearray()
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self.size = 0

    def write(self, piece: bytes) -> None:
        self._h.update(piece)
        self.size += len(piece)
        if self._file is None and self.store.blob_dir is not None and self.size >= BIG_BLOB:
            self.store.blob_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".fetch.", dir=self.store.blob_dir)
            os.fchmod(fd, 0o644)  # as the store's own blob files: sandboxed workers read it by a link
            self._file, self._path = os.fdopen(fd, "wb"), Path(name)
            self._file.write(self._buf)
            self._buf = bytearray()
        if self._file is not None:
            self._file.write(piece)
        else:
            self._buf += piece

    def matches(self) -> bool:
        return self._h.name() == self.hash

    def reset(self) -> None:
        """Forget what a peer sent (it failed or lied) before asking the next one."""
        self.discard()
        self._h, self._buf, self.size = hasher_for(self.hash), bytearray(), 0

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def keep(self) -> None:
        """Store the checked blob: a big one by renaming its file into place."""
        if not self.matches():
            self.discard()
            raise TaskError(f"blob does not match its hash {self.hash[:16]}…")
        if self._file is not None and self._path is not None:
            self._file.close()
            self._file = None
            blob = FileBlob(self._path)
            blob.leaves = self._h.leaves() if isinstance(self._h, PieceHasher) else None
            self.store.put_blob(self.hash, blob)  # moves the file
            self._path = None
        else:
            self.store.put_blob(self.hash, bytes(self._buf))


class BlobStore:
    """Content-addressed blobs, kept by the node's store and fetched from peers on demand."""

    def __init__(self, store: Store, fetcher: Fetcher | None = None) -> None:
        self.store = store
        self.fetcher = fetcher
        self._fetching: dict[str, asyncio.Future[bool]] = {}  # one fetch per blob, however many ask

    def put(self, data: Any) -> str:
        """Keep bytes made here; returns their name."""
        return self.store.put_new_blob(data)

    def put_frame(self, frame: bytes) -> str:
        """Keep a frame (a value's or a payload's small JSON-headed form) under its SHA-256:
        events name frames in 64-character fields, whatever the frame's size."""
        hash_ = hashlib.sha256(frame).hexdigest()
        self.store.put_blob(hash_, frame)
        return hash_

    def put_named(self, hash_: str, data: Any) -> None:
        """Keep bytes that claim a name, after checking the claim (a file this node hashed
        itself, ``FileBlob.checked``, is not hashed again)."""
        if not (isinstance(data, FileBlob) and data.checked == hash_) and not check(hash_, data):
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
        """The blob, from a peer when it is not here yet. Chunks of one task asking at once for
        the same operand share one fetch (streamed to its file while hashed)."""
        data = self.local(hash_)
        if data is not None:
            return data
        if self.fetcher is not None:
            pending = self._fetching.get(hash_)
            if pending is None:
                pending = self._fetching[hash_] = asyncio.ensure_future(self._fetch(hash_))
                pending.add_done_callback(lambda _: self._fetching.pop(hash_, None))
            if await asyncio.shield(pending):
                data = self.local(hash_)
                if data is not None:
                    return data
        raise TaskError(f"blob {hash_[:16]}… is not available here or at any peer")

    async def _fetch(self, hash_: str) -> bool:
        assert self.fetcher is not None
        sink = BlobSink(self.store, hash_)
        try:
            if not await self.fetcher(hash_, sink):
                return False
            await asyncio.to_thread(sink.keep)
            return True
        finally:
            sink.discard()

    # ---- values: a frame {"result": wire} naming its blobs ---------------------------------
    def put_value(self, wire: Any, blobs: Mapping[str, Any], *, trusted: bool = False) -> tuple[str, bytes]:
        """Keep a packed value: its blobs apart (each by its own hash), then a small frame
        holding the wire form. Returns (the frame's hash, the frame)."""
        self.put_many(blobs, trusted=trusted)
        frame = encode_frame({"result": wire})
        return self.put_frame(frame), frame

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
