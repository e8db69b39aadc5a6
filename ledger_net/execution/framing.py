"""Job frames between the engine and sandboxed workers: a JSON header plus raw blobs.

Large operands and results travel as binary blobs named by hash, never as JSON
lists; the header names them in order and the bytes follow back to back.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import SandboxError

_LEN = struct.Struct(">I")


def encode_frame(header: dict[str, Any], blobs: Mapping[str, Any] | None = None) -> bytes:
    """One buffer: header length, JSON header, then each blob's bytes (bytes-like, or an
    object with ``parts()`` such as an array blob, joined without an extra copy)."""
    blobs = dict(blobs or {})
    head = dict(header, blobs=[[h, len(b)] for h, b in blobs.items()])
    raw = orjson.dumps(head)
    parts: list[Any] = [_LEN.pack(len(raw)), raw]
    for blob in blobs.values():
        parts.extend(blob.parts() if hasattr(blob, "parts") else [blob])
    return b"".join(parts)


def decode_frame(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if len(data) < _LEN.size:
        raise SandboxError("job frame is truncated")
    (size,) = _LEN.unpack_from(data)
    view = memoryview(data)
    header = orjson.loads(view[_LEN.size:_LEN.size + size])
    blobs, pos = {}, _LEN.size + size
    for hash_, length in header.pop("blobs", []):
        blobs[hash_] = view[pos:pos + length]  # views, not copies: results can be tens of MiB
        pos += length
    if pos != len(data):
        raise SandboxError("job frame has trailing or missing bytes")
    return header, blobs
