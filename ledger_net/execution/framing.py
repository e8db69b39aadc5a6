"""Job frames between the engine and sandboxed workers: a JSON header plus raw blobs.

Large operands and results travel as binary blobs named by hash, never as JSON
lists; the header names them in order and the bytes follow back to back.
"""

from __future__ import annotations

import struct
from typing import Any, Mapping

import orjson

from ..errors import SandboxError

_LEN = struct.Struct(">I")


def encode_frame(header: dict[str, Any], blobs: Mapping[str, bytes] | None = None) -> bytes:
    blobs = dict(blobs or {})
    head = dict(header, blobs=[[h, len(b)] for h, b in blobs.items()])
    raw = orjson.dumps(head)
    return b"".join([_LEN.pack(len(raw)), raw, *blobs.values()])


def decode_frame(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    if len(data) < _LEN.size:
        raise SandboxError("job frame is truncated")
    (size,) = _LEN.unpack_from(data)
    header = orjson.loads(data[_LEN.size:_LEN.size + size])
    blobs, pos = {}, _LEN.size + size
    for hash_, length in header.pop("blobs", []):
        blobs[hash_] = data[pos:pos + length]
        pos += length
    if pos != len(data):
        raise SandboxError("job frame has trailing or missing bytes")
    return header, blobs
