"""Binary, content-addressed arrays: large operands travel as blobs named by hash.

A signed event should not inline a million-float matrix (and cannot hold floats at
all), so it names the matrix by ``blob_hash(encode_array(m))`` and the bytes move
separately (``blob_names`` says how blobs are named). The encoding is canonical: one array
(dtype, shape, values) always gives the same bytes, hence the same name on every peer.

Layout: ``b"LNA1"`` · 4-byte big-endian header length · UTF-8 JSON header
``{"dtype": "<f8", "shape": [..]}`` with sorted keys · raw little-endian C-order data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..blob_names import check, name_of
from ..errors import TaskError

MAGIC = b"LNA1"
# dtypes that have one unambiguous little-endian byte layout.
_ALLOWED_KINDS = "biuf"
MAX_HEADER = 4096


def _canonical_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in _ALLOWED_KINDS:
        raise TaskError(f"arrays of dtype {dtype} cannot be a blob (numbers and booleans only)")
    return dtype.newbyteorder("<")


class ArrayBlob:
    """An array's canonical blob kept as (header, array) rather than one bytes object.

    Why: a 2048x2048 operand is 32 MiB; hashing it and writing it to disk straight from
    the array's own memory costs no copy, and ``bytes(blob)`` builds the joined form
    only where a consumer really needs one buffer.
    """

    __slots__ = ("array", "prefix", "_hash")

    def __init__(self, array: Any) -> None:
        arr = np.asarray(array)
        dtype = _canonical_dtype(arr.dtype)
        arr = np.asarray(arr, dtype=dtype, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        header = json.dumps({"dtype": dtype.str, "shape": list(arr.shape)},
                            sort_keys=True, separators=(",", ":")).encode()
        self.array = arr
        self.prefix = MAGIC + struct.pack(">I", len(header)) + header
        self._hash: str | None = None

    def parts(self) -> list[Any]:
        """The blob's bytes as buffers, in order (no copy of the array's data)."""
        body = self.array.reshape(-1).data.cast("B") if self.array.size else b""  # .data: the memoryview
        return [self.prefix, body]

    def __len__(self) -> int:
        return len(self.prefix) + self.array.nbytes

    def __bytes__(self) -> bytes:
        return b"".join(self.parts())

    def digest(self) -> str:
        """The blob's name (:func:`blob_names.name_of`), computed once."""
        if self._hash is None:
            self._hash = name_of(self.parts())
        return self._hash


def encode_array(array: Any) -> bytes:
    """Canonical bytes of a numeric array (anything ``np.asarray`` accepts)."""
    return bytes(ArrayBlob(array))


def decode_array(data: Any, copy: bool = True) -> np.ndarray:
    """Inverse of :func:`encode_array`; refuses truncated or foreign bytes.

    ``copy=False`` returns a read-only view of ``data`` (e.g. of a memory-mapped blob file).
    """
    if isinstance(data, ArrayBlob):
        if copy:
            return data.array.copy()
        view = data.array.view()
        view.flags.writeable = False
        return view
    try:
        buf = memoryview(data).cast("B")
    except TypeError:
        raise TaskError(f"blob must be bytes, got {type(data).__name__}") from None
    if len(buf) < 8 or bytes(buf[:4]) != MAGIC:
        raise TaskError("not an array blob (bad magic)")
    (hlen,) = struct.unpack(">I", buf[4:8])
    if hlen > MAX_HEADER or len(buf) < 8 + hlen:
        raise TaskError("array blob header is truncated or too long")
    try:
        header = json.loads(bytes(buf[8:8 + hlen]))
        dtype = np.dtype(header["dtype"])
        shape = tuple(int(d) for d in header["shape"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TaskError(f"array blob header is malformed: {exc}") from None
    if dtype.kind not in _ALLOWED_KINDS or any(d < 0 for d in shape):
        raise TaskError(f"array blob header names dtype {dtype} shape {shape}, which is not allowed")
    body = buf[8 + hlen:]
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(body) != expected:
        raise TaskError(f"array blob holds {len(body)} data bytes, header promises {expected}")
    array = np.frombuffer(body, dtype=dtype).reshape(shape)
    if copy:
        return array.copy()
    array.flags.writeable = False
    return array


def blob_hash(data: Any) -> str:
    """The name a new blob gets (:func:`blob_names.name_of`: ``b3t:`` from one piece up)."""
    if isinstance(data, ArrayBlob):
        return data.digest()
    if hasattr(data, "parts"):
        return name_of(data.parts())
    return name_of(data if isinstance(data, (bytes, memoryview)) else bytes(data))


def fetch_blob(ref: str, blobs: Mapping[str, Any] | None, verify: bool = True) -> Any:
    """Blob ``ref`` from ``blobs``, checked against the hash that names it.

    ``verify=False`` only where the mapping is already trusted (a sandboxed worker reading
    the blobs its node verified when storing them); the buffer is then returned as is.
    """
    if blobs is None or ref not in blobs:
        raise TaskError(f"blob {ref[:16]}… is not available to this worker")
    data = blobs[ref]
    if not verify:
        return data
    if not check(ref, data):
        raise TaskError(f"blob {ref[:16]}… does not match its hash (corrupt or forged)")
    return data if isinstance(data, ArrayBlob) else bytes(data)
