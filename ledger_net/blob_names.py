"""Blob names: the old SHA-256 form and the ``b3t:`` BLAKE3 piece tree, told apart by form.

Why a second form: hashing a 32 MiB operand with SHA-256 cost a fifth of a one-node
matrix product (issue 13), and a whole-blob hash can only be checked once every byte is
here. A ``b3t`` name is the root of a one-level tree over 1 MiB pieces, hashed with BLAKE3
(several times faster), so a fetcher that holds the leaves list (checked against the name
by :func:`check_pieces`) can check any byte range piece by piece (:func:`check_piece`).

Format (frozen; peers and old events rely on it):

* ``"b3t:" + 64 lower-case hex``. Pieces are ``PIECE`` = 1 MiB (the last may be shorter;
  an empty blob has none). ``leaf_i = BLAKE3(piece_i)``, 32 bytes. The name is the hex of
  ``BLAKE3(ROOT_CONTEXT + size as 8 bytes big-endian + leaf_0 + leaf_1 + ...)``.
* 64 lower-case hex: SHA-256 of the whole blob. Valid forever (old events name blobs so).

Which form a new blob gets (:func:`name_of`): ``b3t`` when it holds at least one whole
piece, SHA-256 below that. Small blobs live in the database, whose ``blobs.hash`` column
(like the projections' hash columns) is 64 characters wide, and gain nothing from pieces;
the rule depends only on the bytes, so every peer names the same blob the same way.
Event hashes and result frames stay SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any, Protocol

from blake3 import blake3

from .errors import TaskError

PIECE = 1 << 20
LEAF = 32
PREFIX = "b3t:"
ROOT_CONTEXT = b"ledger_net blob v2\x00"

_SHA256 = re.compile(r"[0-9a-f]{64}").fullmatch
_B3T = re.compile(r"b3t:[0-9a-f]{64}").fullmatch


class BlobMismatch(TaskError):
    """Bytes, a piece or a leaves list that do not match the name they claim."""


def is_sha256_name(name: Any) -> bool:
    return isinstance(name, str) and _SHA256(name) is not None


def is_b3t_name(name: Any) -> bool:
    return isinstance(name, str) and _B3T(name) is not None


def is_blob_name(name: Any) -> bool:
    """Either form: what a blob reference in an event or a URL may be."""
    return isinstance(name, str) and (_SHA256(name) is not None or _B3T(name) is not None)


def file_key(name: str) -> str:
    """The name's hex digest (for a store's fan-out directory)."""
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def piece_count(size: int) -> int:
    return -(-size // PIECE)


def piece_span(size: int, index: int) -> tuple[int, int]:
    """Byte range [start, end) of piece ``index`` in a blob of ``size`` bytes."""
    if not 0 <= index < piece_count(size):
        raise BlobMismatch(f"piece {index} is outside a blob of {size} bytes")
    start = index * PIECE
    return start, min(start + PIECE, size)


def pieces_covering(size: int, start: int, end: int) -> range:
    """Indices of the pieces holding bytes [start, end) (a range fetch checks these)."""
    if not 0 <= start <= end <= size:
        raise BlobMismatch(f"range [{start}, {end}) is outside a blob of {size} bytes")
    return range(start // PIECE, piece_count(end)) if end > start else range(0)


def root_name(size: int, leaves: bytes) -> str:
    """The ``b3t`` name of a blob of ``size`` bytes whose pieces hash to ``leaves``."""
    return PREFIX + blake3(ROOT_CONTEXT + size.to_bytes(8, "big") + leaves).hexdigest()


class NameHasher(Protocol):
    """Feeds bytes as they pass (a write, a fetch) and names them at the end."""

    size: int

    def update(self, data: Any) -> None: ...

    def name(self) -> str: ...


class PieceHasher:
    """Streaming ``b3t`` hasher: any slicing of the input gives the same leaves."""

    def __init__(self) -> None:
        self._leaves = bytearray()
        self._piece = blake3()
        self._fill = 0
        self.size = 0

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        while len(view):
            take = min(PIECE - self._fill, len(view))
            self._piece.update(view[:take])
            self._fill += take
            view = view[take:]
            if self._fill == PIECE:
                self._leaves += self._piece.digest()
                self._piece, self._fill = blake3(), 0

    def leaves(self) -> bytes:
        return bytes(self._leaves) + (self._piece.digest() if self._fill else b"")

    def name(self) -> str:
        return root_name(self.size, self.leaves())


class Sha256Hasher:
    """The old form behind the same interface."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.size = 0

    def update(self, data: Any) -> None:
        self._h.update(data)
        self.size += memoryview(data).nbytes

    def name(self) -> str:
        return self._h.hexdigest()


def hasher_for(name: str) -> NameHasher:
    """A hasher of the form ``name`` has (to check bytes claiming it as they stream)."""
    if is_b3t_name(name):
        return PieceHasher()
    if is_sha256_name(name):
        return Sha256Hasher()
    raise BlobMismatch(f"{name[:80]!r} is not a blob name")


class NewNameHasher:
    """Names bytes made here as :func:`name_of` would, in one pass, deciding the form by size:
    it feeds both hashers until a whole piece has passed (at most 1 MiB twice), then only BLAKE3."""

    def __init__(self) -> None:
        self._b3 = PieceHasher()
        self._sha: Sha256Hasher | None = Sha256Hasher()
        self.size = 0

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        if self._sha is not None:
            if self.size + len(view) < PIECE:
                self._sha.update(view)
            else:
                self._sha = None
        self._b3.update(view)
        self.size += len(view)

    def name(self) -> str:
        return self._sha.name() if self._sha is not None else self._b3.name()

    def leaves(self) -> bytes | None:
        """The ``b3t`` leaves when the bytes got a ``b3t`` name, else None."""
        return self._b3.leaves() if self._sha is None else None


def _buffers(data: Any) -> Iterable[Any]:
    if hasattr(data, "parts"):
        return data.parts()
    if isinstance(data, (list, tuple)):
        return data
    return [data]


def name_of(data: Any) -> str:
    """The name a new blob gets: ``data`` is bytes-like, a list of buffers, or has ``parts()``
    (hashed where they lie, no copy)."""
    h = NewNameHasher()
    for part in _buffers(data):
        h.update(part)
    return h.name()


def check(name: str, data: Any) -> bool:
    """True when ``data`` (as :func:`name_of` takes it) is what ``name`` names, in either form."""
    try:
        h = hasher_for(name)
    except BlobMismatch:
        return False
    for part in _buffers(data):
        h.update(part)
    return h.name() == name


def pieces(name: str, data: Any) -> bytes:
    """The leaves list of blob ``name`` (``LEAF`` bytes a piece), checked against the name."""
    if not is_b3t_name(name):
        raise BlobMismatch(f"{name[:80]!r} is not a b3t name; only those have pieces")
    h = PieceHasher()
    for part in _buffers(data):
        h.update(part)
    leaves = h.leaves()
    if root_name(h.size, leaves) != name:
        raise BlobMismatch(f"blob does not match its name {name[:20]}…")
    return leaves


def check_pieces(name: str, size: int, leaves: bytes) -> None:
    """Raise :class:`BlobMismatch` unless ``leaves`` is the leaves list of a ``size``-byte blob ``name``."""
    if not is_b3t_name(name):
        raise BlobMismatch(f"{name[:80]!r} is not a b3t name; only those have pieces")
    if size < 0 or len(leaves) != LEAF * piece_count(size):
        raise BlobMismatch(f"{len(leaves)} bytes of leaves cannot describe a blob of {size} bytes")
    if root_name(size, bytes(leaves)) != name:
        raise BlobMismatch(f"leaves list does not match the name {name[:20]}…")


def check_piece(leaves: bytes, index: int, data: Any) -> None:
    """Raise :class:`BlobMismatch` unless ``data`` is piece ``index`` of the blob whose
    (already checked, :func:`check_pieces`) leaves list is ``leaves``."""
    if not 0 <= index < len(leaves) // LEAF:
        raise BlobMismatch(f"piece {index} is outside a blob of {len(leaves) // LEAF} pieces")
    view = memoryview(data).cast("B")
    if not 0 < len(view) <= PIECE or blake3(view).digest() != bytes(leaves[index * LEAF:(index + 1) * LEAF]):
        raise BlobMismatch(f"piece {index} does not match its leaf")
