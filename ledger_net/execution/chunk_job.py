"""The function warm sandboxed workers run for built-in task types (bytes in, bytes out)."""

from __future__ import annotations

import mmap
import os
from typing import Any

from ..compute import pack, run_chunk
from .framing import decode_frame, encode_frame

FILE_RESULT_BYTES = 1 << 20  # results this big leave as files, not through the pipe


def _map(path: str) -> Any:
    """A blob file of the node's store, read-only and memory-mapped: operands are not copied."""
    with open(path, "rb") as f:
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


def run_chunk_job(data: bytes) -> bytes:
    """Run one chunk: frame {task_type, payload, files} + blobs -> frame {result} + result blobs.

    ``files`` maps blob hashes to files the node checked against those hashes when it
    stored them, so they are not hashed again here.
    """
    header, blobs = decode_frame(data)
    for hash_, path in (header.get("files") or {}).items():
        blobs[hash_] = _map(path)
    value = run_chunk(header["task_type"], header["payload"], blobs, verify=False)
    wire, result_blobs = pack(value)
    inline, files = {}, {}
    for hash_, blob in result_blobs.items():
        if len(blob) >= FILE_RESULT_BYTES:
            files[hash_] = _write_here(hash_, blob)
        else:
            inline[hash_] = blob
    return encode_frame({"result": wire, "files": files}, inline)


def _write_here(hash_: str, blob: Any) -> str:
    """Write a big result blob into this worker's private dir (its cwd); the node moves it
    out and checks it against ``hash_`` itself."""
    tmp = f".{hash_}.tmp"
    with open(tmp, "wb") as f:
        for part in (blob.parts() if hasattr(blob, "parts") else [blob]):
            f.write(part)
    os.replace(tmp, hash_)
    return hash_
