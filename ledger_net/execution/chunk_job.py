"""The function warm sandboxed workers run for built-in task types (bytes in, bytes out)."""

from __future__ import annotations

from ..compute import pack, run_chunk
from .framing import decode_frame, encode_frame


def run_chunk_job(data: bytes) -> bytes:
    """Run one chunk: frame {task_type, payload} + blobs -> frame {result} + result blobs."""
    header, blobs = decode_frame(data)
    value = run_chunk(header["task_type"], header["payload"], blobs)
    wire, result_blobs = pack(value)
    return encode_frame({"result": wire}, result_blobs)
