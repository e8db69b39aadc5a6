"""Part of a ``b3t`` blob, fetched by byte range and checked piece by piece.

Why: a chunk of a row-split product needs only its rows of A (and all of B). A blob named
by SHA-256 can only be checked whole, so a second node used to fetch all of A for half of
its rows; a ``b3t`` name is the root of a tree over 1 MiB pieces (``blob_names``), so the
node checks the peer's leaves list against the name once, then each piece it fetches
against its leaf, and fetches only the pieces covering the bytes it needs.

How a partial blob is kept, so nothing unverified is ever used:

* its bytes go to a sparse file of the blob's full size in ``<blob dir>/.partial/``, never
  into the store, so the node neither serves it to peers nor finds it as a whole blob;
* a piece is written to the file only after it matched its leaf (pieces arrive into memory,
  are checked, then written at their offset); the set of pieces written is ``have``;
* a chunk is given the file only when every piece covering the bytes it reads (the array's
  header and its rows) is in ``have``; the holes read as zeros and no chunk reads them;
* once every piece is in, the file is the blob: it moves into the store (a rename) and a
  later whole fetch finds it there. A whole fetch of a blob held only in part still fetches
  it whole (``BlobStore.get`` does not look here).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..blob_names import PIECE, BlobMismatch, check_piece, check_pieces, is_b3t_name, piece_count, pieces_covering
from ..compute.blobs import MAGIC, MAX_HEADER
from ..errors import TaskError
from .blobs import BlobStore, FileBlob

# Ranges are asked for only when they save something: a blob under this many pieces is
# fetched whole (one request instead of three).
MIN_PIECES = 4


class PartialBlob:
    """The pieces of one ``b3t`` blob this node holds, each checked against its leaf."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.size: int | None = None
        self.leaves: bytes | None = None
        self.have: set[int] = set()
        self.path: Path | None = None
        self._fd: int | None = None
        self._offered: bytes | None = None  # a peer's leaves list, not yet checked (the size comes later)

    # ---- what a peer sends (``network.server.PieceSinkPort``) -----------------------------
    def knows_size(self) -> bool:
        return self.size is not None

    def offer_leaves(self, leaves: bytes) -> None:
        """A peer's leaves list; checked by :meth:`begin` once the blob's size is known."""
        if self.leaves is None:
            self._offered = bytes(leaves)

    def begin(self, size: int) -> None:
        """The blob's size as a peer states it (a range answer's ``Content-Range``): with the
        offered leaves it must give the name, else BlobMismatch and the peer is not used."""
        if self.leaves is not None:
            if size != self.size:
                raise BlobMismatch(f"a peer says blob {self.name[:20]}… holds {size} bytes, not {self.size}")
            return
        if self._offered is None:
            raise BlobMismatch(f"no leaves list for blob {self.name[:20]}…")
        leaves, self._offered = self._offered, None
        check_pieces(self.name, size, leaves)
        self.size, self.leaves = size, leaves
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".part.", dir=self.directory)
        os.fchmod(fd, 0o644)  # as the store's blob files: a sandboxed worker maps it by a link
        os.ftruncate(fd, size)  # sparse: only the pieces written take space
        self._fd, self.path = fd, Path(name)

    def piece(self, index: int, data: Any) -> None:
        """Check piece ``index`` against its leaf, then write it; BlobMismatch if it lies."""
        assert self.leaves is not None and self.size is not None and self._fd is not None, "begin() first"
        start, end = index * PIECE, min((index + 1) * PIECE, self.size)
        if len(memoryview(data)) != end - start:
            raise BlobMismatch(f"piece {index} of blob {self.name[:20]}… is {len(memoryview(data))} bytes, "
                               f"not {end - start}")
        check_piece(self.leaves, index, data)
        if index not in self.have:
            os.pwrite(self._fd, data, start)
            self.have.add(index)

    def piece_size(self, index: int) -> int:
        assert self.size is not None
        return min(PIECE, self.size - index * PIECE)

    def writer(self, first: int) -> Callable[[bytes], None]:
        """Where the bytes of a range starting at piece ``first`` go: cut into pieces, each
        checked and written once whole (a piece is never written before its check)."""
        buffer = bytearray()
        index = first

        def write(data: bytes) -> None:
            nonlocal buffer, index
            buffer += data
            while self.size is not None and index * PIECE < self.size and len(buffer) >= self.piece_size(index):
                size = self.piece_size(index)
                self.piece(index, buffer[:size])
                buffer = buffer[size:]
                index += 1
        return write

    def missing_runs(self, wanted: Iterable[int]) -> list[tuple[int, int]]:
        """The pieces of ``wanted`` not held yet, as runs [a, b) of consecutive indexes (one
        range request each)."""
        runs: list[tuple[int, int]] = []
        for i in self.missing(wanted):
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
        return runs

    # ---- what the node asks -------------------------------------------------------------
    def missing(self, wanted: Iterable[int]) -> list[int]:
        return sorted(set(wanted) - self.have)

    def complete(self) -> bool:
        return self.size is not None and len(self.have) == piece_count(self.size)

    def holds(self, start: int, end: int) -> bool:
        """Whether bytes [start, end) are all in checked pieces."""
        return self.size is not None and not self.missing(pieces_covering(self.size, start, end))

    def rows_span(self, first: int, end: int) -> tuple[int, int]:
        """Bytes [a, b) of rows [first, end) of the array blob, from its (checked) header piece."""
        offset, row_bytes, rows = array_layout(self.header())
        if not 0 <= first <= end <= rows:
            raise TaskError(f"rows {first}..{end} are outside blob {self.name[:20]}… of {rows} rows")
        return offset + first * row_bytes, offset + end * row_bytes

    def header(self) -> bytes:
        assert self._fd is not None and self.size is not None and 0 in self.have, "piece 0 first"
        return os.pread(self._fd, min(PIECE, self.size), 0)

    def close(self) -> None:
        """Stop writing; the file stays (a worker may map it, or the store now holds it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def array_layout(prefix: bytes) -> tuple[int, int, int]:
    """(offset of the data, bytes per row, rows) of an array blob (``compute.blobs``' layout)
    from its first bytes; TaskError when they are not an array blob's."""
    if len(prefix) < 8 or prefix[:4] != MAGIC:
        raise TaskError("not an array blob (bad magic)")
    (hlen,) = struct.unpack(">I", prefix[4:8])
    if hlen > MAX_HEADER or len(prefix) < 8 + hlen:
        raise TaskError("array blob header is truncated or too long")
    try:
        header = json.loads(prefix[8:8 + hlen])
        itemsize = int(np.dtype(header["dtype"]).itemsize)
        shape = [int(d) for d in header["shape"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise TaskError(f"array blob header is malformed: {exc}") from None
    if not shape or any(d < 0 for d in shape):
        raise TaskError(f"array blob of shape {shape} has no rows")
    row = itemsize
    for d in shape[1:]:
        row *= d
    return 8 + hlen, row, shape[0]


def row_ranges(value: Any) -> dict[str, list[tuple[int, int]]]:
    """Blobs a wire value names only by runs of rows (``{"$array": [name, first, end]}``),
    with those runs; a blob it also names whole is left out (it is needed whole)."""
    runs: dict[str, list[tuple[int, int]]] = {}
    whole: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            inner = v.get("$array") if len(v) == 1 else None
            if isinstance(inner, list) and len(inner) == 3 and isinstance(inner[0], str) \
                    and all(type(x) is int for x in inner[1:]):
                runs.setdefault(inner[0], []).append((inner[1], inner[2]))
            elif isinstance(inner, str):
                whole.add(inner)
            elif len(v) == 1 and "$blob" in v and isinstance(v["$blob"], str):
                whole.add(v["$blob"])
            else:
                stack.extend(v.values())
    return {name: spans for name, spans in runs.items() if name not in whole}


# Asks peers for pieces ``wanted`` of blob ``name`` into a PartialBlob (``network.server``'s
# ``fetch_pieces``); True once every wanted piece is in.
PieceFetcher = Callable[[str, PartialBlob, Sequence[int]], Awaitable[bool]]


class RowFetches:
    """This node's partial blobs and the range fetches that fill them: a chunk asks for runs of
    rows of an array blob and gets the path of a file holding them, checked."""

    def __init__(self, blobs: BlobStore, fetch: PieceFetcher | None, directory: Path | None) -> None:
        self.blobs, self.fetch, self.directory = blobs, fetch, directory
        self._partials: dict[str, PartialBlob] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetched_pieces = 0  # pieces fetched by range, checked and kept (for the benches)
        if directory is not None and directory.is_dir():
            for stale in directory.glob(".part.*"):  # a previous run's: nothing knows which pieces are in
                stale.unlink(missing_ok=True)

    async def rows(self, name: str, spans: Sequence[tuple[int, int]]) -> str | None:
        """The path of a file holding rows ``spans`` of array blob ``name`` (and its header),
        every byte of them checked; None when the blob is better fetched whole (not a ``b3t``
        name, a small blob, or no peer answers ranges)."""
        if self.fetch is None or self.directory is None or not is_b3t_name(name):
            return None
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one chunk's pieces at a time: the first chunk's rows come first
            whole = self.blobs.path(name)
            if whole is not None:
                self._drop(name)
                return str(whole)
            partial = self._partials.get(name)
            if partial is None:
                partial = self._partials[name] = PartialBlob(name, self.directory)
            if not partial.knows_size():
                if not await self._fill(partial, [0]) or partial.size is None:
                    self._drop(name)
                    return None
                if piece_count(partial.size) < MIN_PIECES:
                    self._drop(name)
                    return None
            wanted = {0}
            for first, end in spans:
                start, stop = partial.rows_span(first, end)
                wanted.update(pieces_covering(partial.size or 0, start, stop))
            if not await self._fill(partial, sorted(wanted)):
                return None
            if partial.complete():  # every piece checked: the file is the blob
                return str(self._promote(partial))
            assert partial.path is not None
            return str(partial.path)

    def held(self, name: str) -> set[int]:
        """The checked pieces held of a blob this node has in part (empty when none)."""
        partial = self._partials.get(name)
        return set(partial.have) if partial is not None else set()

    async def _fill(self, partial: PartialBlob, wanted: Sequence[int]) -> bool:
        assert self.fetch is not None
        if partial.knows_size() and not partial.missing(wanted):
            return True  # held already (another chunk of the same rows, or the header's piece)
        before = len(partial.have)
        ok = await self.fetch(partial.name, partial, wanted) and not partial.missing(wanted)
        self.fetched_pieces += len(partial.have) - before
        return ok

    def _promote(self, partial: PartialBlob) -> Path:
        partial.close()
        assert partial.path is not None
        blob = FileBlob(partial.path)
        blob.checked, blob.leaves = partial.name, partial.leaves
        self.blobs.put_named(partial.name, blob)  # a rename: FileBlob.checked spares a second hash
        self._partials.pop(partial.name, None)
        path = self.blobs.path(partial.name)
        assert path is not None
        return path

    def _drop(self, name: str) -> None:
        partial = self._partials.pop(name, None)
        if partial is not None:
            partial.discard()

    def close(self) -> None:
        """Forget every partial blob and delete its file (a worker still mapping one keeps its pages)."""
        for name in list(self._partials):
            self._drop(name)
