"""The function warm sandboxed workers run for built-in task types (bytes in, bytes out)."""

from __future__ import annotations

import itertools
import mmap
import os
import re
from typing import Any

from ..compute import run_chunk
from ..compute.blobs import ArrayBlob
from ..compute.matrices import FINITE
from ..compute.wire import PARALLEL_HASH_BYTES, Packer
from .framing import decode_frame, encode_frame

FILE_RESULT_BYTES = PARALLEL_HASH_BYTES  # results this big leave as files, not through the pipe
_SLICE = 1 << 20  # write a result a slice at a time
_UNNAMED = re.compile(r"result-[0-9]{1,4}")
# Fault the whole operand in with one call instead of one page fault per 4 KiB on first touch.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


# The maps of the last chunk's operand files, by file identity: the next chunk of the same task
# reuses B's map (no second mmap and MAP_POPULATE) and FINITE's note that B is finite.
_kept: dict[tuple[int, int, int, int], Any] = {}


def _file_key(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)  # a link to the node's file: the same inode whichever link names it
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _map_files(files: dict[str, str]) -> dict[str, Any]:
    """The chunk's operand files, memory-mapped: maps the last chunk used and this one does not
    are dropped first, so a worker never holds more maps than one chunk needs."""
    keys = {hash_: _file_key(path) for hash_, path in files.items()}
    for key in [k for k in _kept if k not in keys.values()]:
        FINITE.drop(_kept.pop(key).obj)
    views = {}
    for hash_, path in files.items():
        view = _kept.get(keys[hash_])
        if view is None:
            view = _map(path)
            if isinstance(view, memoryview):
                _kept[keys[hash_]] = view
                FINITE.keep(view.obj)
        views[hash_] = view
    return views


def _map(path: str) -> Any:
    """A blob file of the node's store, read-only and memory-mapped: operands are not copied."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return memoryview(mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ))


def run_chunk_job(data: bytes) -> bytes:
    """Run one chunk: frame {task_type, payload, files} + blobs -> frame {result} + result blobs.

    ``files`` maps blob hashes to files the node checked against those hashes when it
    stored them, so they are not hashed again here. A big result array is written to a file
    left unnamed (``result-N``): the node hashes it as it takes it and names it itself, so the
    result is hashed once, by the party that must not trust the worker anyway.
    """
    header, blobs = decode_frame(data)
    blobs.update(_map_files(header.get("files") or {}))
    value = run_chunk(header["task_type"], header["payload"], blobs, verify=False)
    written: list[str] = []
    numbers = itertools.count()  # next() is atomic: the Packer may store from its hashing threads
    wire, result_blobs = Packer(store=lambda blob: _write_unnamed(blob, f"result-{next(numbers)}", written)).pack(value)
    inline, files = {}, {}
    for name, blob in result_blobs.items():
        if name in written:
            files[name] = name
        elif len(blob) >= FILE_RESULT_BYTES:  # a big list ({"$blob": hash}): named by its hash
            files[name] = _write_named(name, blob)
        else:
            inline[name] = blob
    return encode_frame({"result": wire, "files": files}, inline)


def is_unnamed(name: Any) -> bool:
    """Whether ``name`` is a result file a worker left for its node to name."""
    return isinstance(name, str) and _UNNAMED.fullmatch(name) is not None


def _write_unnamed(blob: ArrayBlob, name: str, written: list[str]) -> str:
    """Write a big result array into this worker's private dir (its cwd) as ``name``, a slice
    at a time straight from the array's memory."""
    written.append(name)
    with open(name, "wb") as f:
        for part in blob.parts():
            view = memoryview(part).cast("B")
            for start in range(0, len(view), _SLICE):
                f.write(view[start:start + _SLICE])
    return name


def _write_named(hash_: str, blob: Any) -> str:
    """Write a big result blob the Packer already named by its hash; the node checks the name."""
    tmp = f".{hash_}.tmp"
    with open(tmp, "wb") as f:
        for part in (blob.parts() if hasattr(blob, "parts") else [blob]):
            f.write(part)
    os.replace(tmp, hash_)
    return hash_
