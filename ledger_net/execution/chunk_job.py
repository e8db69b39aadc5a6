"""The function warm sandboxed workers run for built-in task types (bytes in, bytes out)."""

from __future__ import annotations

import hashlib
import mmap
import os
from typing import Any

from ..compute import run_chunk
from ..compute.blobs import ArrayBlob
from ..compute.wire import PARALLEL_HASH_BYTES, Packer
from .framing import decode_frame, encode_frame

FILE_RESULT_BYTES = PARALLEL_HASH_BYTES  # results this big leave as files, not through the pipe
_SLICE = 1 << 20  # hash and write a slice while it is in cache
# Fault the whole operand in with one call instead of one page fault per 4 KiB on first touch.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _map(path: str) -> Any:
    """A blob file of the node's store, read-only and memory-mapped: operands are not copied."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return memoryview(mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ))


def run_chunk_job(data: bytes) -> bytes:
    """Run one chunk: frame {task_type, payload, files} + blobs -> frame {result} + result blobs.

    ``files`` maps blob hashes to files the node checked against those hashes when it
    stored them, so they are not hashed again here.
    """
    header, blobs = decode_frame(data)
    for hash_, path in (header.get("files") or {}).items():
        blobs[hash_] = _map(path)
    value = run_chunk(header["task_type"], header["payload"], blobs, verify=False)
    written: set[str] = set()
    wire, result_blobs = Packer(store=lambda blob: _write_here(blob, written)).pack(value)
    inline, files = {}, {}
    for hash_, blob in result_blobs.items():
        if hash_ in written:
            files[hash_] = hash_
        elif len(blob) >= FILE_RESULT_BYTES:
            files[hash_] = _write_here(blob, written)
        else:
            inline[hash_] = blob
    return encode_frame({"result": wire, "files": files}, inline)


def _write_here(blob: ArrayBlob, written: set[str]) -> str:
    """Write a big result blob into this worker's private dir (its cwd), hashing each slice
    as it is written (one pass over the result, not a hash pass and a write pass); returns
    its hash. The node moves the file out and checks it against that hash itself."""
    h = hashlib.sha256()
    tmp = f".result.{len(written)}.tmp"
    with open(tmp, "wb") as f:
        for part in blob.parts():
            view = memoryview(part).cast("B")
            for start in range(0, len(view), _SLICE):
                piece = view[start:start + _SLICE]
                h.update(piece)
                f.write(piece)
    hash_ = h.hexdigest()
    os.replace(tmp, hash_)
    written.add(hash_)
    return hash_
