"""Blobs by content hash: small ones as database rows, big ones (`BIG_BLOB` and up) as files.

A database row per multi-megabyte operand would cost a copy into SQLite's pages and another
out, and could not be memory-mapped by workers; so a node that owns a data directory sets
`blob_dir`, and big blobs live there as `<dir>/<hex[:2]>/<name>`, written whole or not at all.
Names come in two forms (`blob_names`: SHA-256, or `b3t:` piece trees); the store takes either
and names a new blob as `blob_names.name_of` does, hashing while it writes. A `b3t:` name is 68
characters, wider than the `blobs.hash` column, so a blob named so is always a file when there
is a `blob_dir` (even one a peer made small on purpose); without one (a bare store) it is a row,
which only SQLite, which does not enforce column widths, can hold.

A ``b3t`` file keeps its leaves list beside it (``<name>.leaves``, 32 bytes a MiB), written
before the blob becomes visible whenever the writer already hashed its pieces (a blob named
here, a fetched one): a peer's ``/pieces`` request then costs a read of 1 KiB, not a BLAKE3
pass over the whole blob. The sidecar is checked against the name each time it is loaded; a
missing or corrupt one is rebuilt from the blob, never served.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ...blob_names import (
    BlobMismatch,
    NewNameHasher,
    check_pieces,
    file_key,
    is_b3t_name,
    is_blob_name,
    name_of,
    pieces,
)
from ..tables import blobs
from .base import StoreBase

BIG_BLOB = 1 << 20
_STREAM_SLICE = 1 << 20  # hash and write a big blob a slice at a time, while the slice is in cache


class BlobStorage(StoreBase):
    """The store's blob methods (mixed into `Store`)."""

    def put_blob(self, hash_: str, data: Any) -> None:
        """Keep a blob the caller has checked against its hash. ``data`` is bytes-like, or an
        object with ``parts()`` (buffers written back to back, e.g. an array blob)."""
        size = len(data)
        if self.blob_dir is not None and (size >= BIG_BLOB or is_b3t_name(hash_)):
            path = self._blob_file(hash_)
            if path.exists():
                if getattr(data, "path", None) is not None:
                    Path(data.path).unlink(missing_ok=True)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            leaves = getattr(data, "leaves", None)
            if leaves is not None and is_b3t_name(hash_):
                self._write_leaves(hash_, leaves)  # before the blob: a reader that sees it finds them
            source = getattr(data, "path", None)
            if source is not None:  # a checked file on this file system: move it, do not copy
                try:
                    os.replace(source, path)
                    return
                except OSError:
                    pass
            tmp = self._tmp_blob_file()
            self._write_parts(tmp, data)
            os.replace(tmp, path)  # readers see the whole blob or none
            return
        with self._write_lock, self.engine.begin() as conn:
            if conn.execute(select(blobs.c.hash).where(blobs.c.hash == hash_)).first() is None:
                raw = bytes(data) if not isinstance(data, bytes) else data
                conn.execute(blobs.insert().values(hash=hash_, size=size, data=raw))

    def put_new_blob(self, data: Any) -> str:
        """Keep a blob made here and return its name, hashing while writing: one pass over
        the bytes instead of a hash pass and a write pass (for big operands, half the time)."""
        if self.blob_dir is None or len(data) < BIG_BLOB:
            hash_ = name_of(data)
            self.put_blob(hash_, data)
            return hash_
        tmp = self._tmp_blob_file()
        hasher = self._write_parts(tmp, data, NewNameHasher())
        hash_ = hasher.name()
        path = self._blob_file(hash_)
        if path.exists():
            tmp.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            leaves = hasher.leaves()
            if leaves is not None:
                self._write_leaves(hash_, leaves)
            os.replace(tmp, path)
        return hash_

    def _leaves_file(self, hash_: str) -> Path:
        path = self._blob_file(hash_)
        return path.with_name(path.name + ".leaves")

    def _write_leaves(self, hash_: str, leaves: bytes) -> None:
        """Keep a ``b3t`` blob's leaves list beside its file (whole or not at all)."""
        target = self._leaves_file(hash_)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".leaves.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(bytes(leaves))
        os.replace(tmp, target)

    def blob_leaves(self, hash_: str) -> bytes | None:
        """The leaves list of a held ``b3t`` blob (None when absent): its sidecar when that
        matches the name with the file's size, else hashed from the blob (and the sidecar
        rewritten). BlobMismatch when the blob itself does not match its name."""
        path = self.blob_path(hash_)
        if path is None:
            data = self.get_blob(hash_)
            return None if data is None else pieces(hash_, data)
        try:
            leaves = self._leaves_file(hash_).read_bytes()
            check_pieces(hash_, path.stat().st_size, leaves)
            return leaves
        except (OSError, BlobMismatch):
            pass
        view = self.blob_view(hash_)
        if view is None:
            return None
        leaves = pieces(hash_, view)
        with contextlib.suppress(OSError):  # a sidecar that cannot be kept is rebuilt next time
            self._write_leaves(hash_, leaves)
        return leaves

    def _tmp_blob_file(self) -> Path:
        assert self.blob_dir is not None
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        return self.blob_dir / f".new.{os.getpid()}.{threading.get_ident()}.tmp"

    @staticmethod
    def _write_parts(path: Path, data: Any, h: Any = None) -> Any:
        """Write a blob's buffers to ``path`` a slice at a time, feeding ``h`` (a hash) as it goes.
        The file's blocks are reserved first (one fallocate, where the file system has it): 32 MiB
        written into them cost 4.1 ms of CPU against 6.4 ms block by block (ext4, issue 13)."""
        with open(path, "wb") as f:
            size = len(data)
            if size >= BIG_BLOB and hasattr(os, "posix_fallocate"):
                with contextlib.suppress(OSError):  # not every file system can; the writes still do
                    os.posix_fallocate(f.fileno(), 0, size)
            for part in (data.parts() if hasattr(data, "parts") else [data]):
                view = memoryview(part).cast("B")
                for start in range(0, len(view), _STREAM_SLICE):
                    piece = view[start:start + _STREAM_SLICE]
                    if h is not None:
                        h.update(piece)
                    f.write(piece)
            f.truncate()  # the file is what was written, whatever len(data) promised
        return h

    def _blob_file(self, hash_: str) -> Path:
        assert self.blob_dir is not None
        if not is_blob_name(hash_):
            raise ValueError(f"{hash_[:80]!r} is not a blob name")
        return self.blob_dir / file_key(hash_)[:2] / hash_

    def blob_path(self, hash_: str) -> Path | None:
        """The file holding a big blob, or None when the blob is kept in the database (or absent)."""
        if self.blob_dir is None:
            return None
        try:
            path = self._blob_file(hash_)
        except ValueError:
            return None
        return path if path.is_file() else None

    def blob_view(self, hash_: str) -> Any:
        """A blob as a read-only buffer: a memory map of its file when big (no copy), else bytes."""
        path = self.blob_path(hash_)
        if path is not None:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return b""
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        return self.get_blob(hash_)

    def get_blob(self, hash_: str) -> bytes | None:
        path = self.blob_path(hash_)
        if path is not None:
            return path.read_bytes()
        with self.engine.connect() as conn:
            return conn.execute(select(blobs.c.data).where(blobs.c.hash == hash_)).scalar()
