"""Binary, content-addressed arrays: large operands travel as blobs named by hash.

A signed event should not inline a million-float matrix (and cannot hold floats at
all), so it names the matrix by ``blob_hash(encode_array(m))`` and the bytes move
separately. The encoding is canonical: one array (dtype, shape, values) always
gives the same bytes, hence the same hash on every peer.

Layout: ``b"LNA1"`` · 4-byte big-endian header length · UTF-8 JSON header
``{"dtype": "<f8", "shape": [..]}`` with sorted keys · raw little-endian C-order data.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Mapping

import numpy as np

from ..errors import TaskError

MAGIC = b"LNA1"
# dtypes that have one unambiguous little-endian byte layout.
_ALLOWED_KINDS = "biuf"
MAX_HEADER = 4096


def _canonical_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in _ALLOWED_KINDS:
        raise TaskError(f"arrays of dtype {dtype} cannot be a blob (numbers and booleans only)")
    return dtype.newbyteorder("<")


def encode_array(array: Any) -> bytes:
    """Canonical bytes of a numeric array (anything ``np.asarray`` accepts)."""
    arr = np.asarray(array)
    dtype = _canonical_dtype(arr.dtype)
    arr = np.asarray(arr, dtype=dtype, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    header = json.dumps({"dtype": dtype.str, "shape": list(arr.shape)},
                        sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack(">I", len(header)) + header + arr.tobytes(order="C")


def decode_array(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_array`; refuses truncated or foreign bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TaskError(f"blob must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:4] != MAGIC or len(data) < 8:
        raise TaskError("not an array blob (bad magic)")
    (hlen,) = struct.unpack(">I", data[4:8])
    if hlen > MAX_HEADER or len(data) < 8 + hlen:
        raise TaskError("array blob header is truncated or too long")
    try:
        header = json.loads(data[8:8 + hlen])
        dtype = np.dtype(header["dtype"])
        shape = tuple(int(d) for d in header["shape"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TaskError(f"array blob header is malformed: {exc}") from None
    if dtype.kind not in _ALLOWED_KINDS or any(d < 0 for d in shape):
        raise TaskError(f"array blob header names dtype {dtype} shape {shape}, which is not allowed")
    body = data[8 + hlen:]
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(body) != expected:
        raise TaskError(f"array blob holds {len(body)} data bytes, header promises {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).copy()


def blob_hash(data: bytes) -> str:
    """The blob's name: lower-case hex SHA-256 of its bytes."""
    return hashlib.sha256(bytes(data)).hexdigest()


def fetch_blob(ref: str, blobs: Mapping[str, bytes] | None) -> bytes:
    """Bytes of blob ``ref`` from ``blobs``, checked against the hash that names them."""
    if blobs is None or ref not in blobs:
        raise TaskError(f"blob {ref[:16]}… is not available to this worker")
    data = blobs[ref]
    if blob_hash(data) != ref:
        raise TaskError(f"blob {ref[:16]}… does not match its hash (corrupt or forged)")
    return bytes(data)
