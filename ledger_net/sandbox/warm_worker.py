"""The loop inside one warm-pool worker process (already confined before this code runs).

Frames on the pipes, all big-endian:
  request   ``>HI`` name length, payload length, then the name (UTF-8) and the payload
  response  ``>BdI`` status, this process's CPU seconds so far, body length, then the body
status 0 = ok (body = result bytes), 1 = the function raised (body = "Type: message"),
2 = the worker could not start (body = why; sent instead of the ready frame).
The ready frame is a response with status 0 and the body ``ready``.

The protocol runs on a private copy of the original stdout; fd 1 is pointed at stderr so a
function that prints cannot corrupt it.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import struct
import sys
from collections.abc import Callable

REQUEST = struct.Struct(">HI")
RESPONSE = struct.Struct(">BdI")
STATUS_OK, STATUS_ERROR, STATUS_FATAL = 0, 1, 2
READY = b"ready"


def resolve(path: str) -> Callable[[bytes], bytes]:
    """Import ``"package.module:function"``; only such registered paths are ever callable."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"function path {path!r} is not of the form 'package.module:function'")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path!r} is not callable")
    return obj


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        data = os.read(fd, min(n, 1 << 20))
        if not data:
            return None
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _write(fd: int, status: int, body: bytes) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    data = RESPONSE.pack(status, usage.ru_utime + usage.ru_stime, len(body)) + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(registry: dict[str, str], job_cpu_seconds: float) -> None:
    """Answer requests until stdin closes. Each job gets ``job_cpu_seconds`` more CPU (soft limit)."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    in_fd = 0
    try:
        functions = {name: resolve(path) for name, path in registry.items()}
    except BaseException as exc:
        _write(out_fd, STATUS_FATAL, f"{type(exc).__name__}: {exc}".encode(errors="replace"))
        return
    _, hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)
    _write(out_fd, STATUS_OK, READY)
    while True:
        header = _read_exact(in_fd, REQUEST.size)
        if header is None:
            return
        name_len, payload_len = REQUEST.unpack(header)
        raw = _read_exact(in_fd, name_len + payload_len)
        if raw is None:
            return
        name, payload = raw[:name_len].decode(), raw[name_len:]
        # Per-job CPU limit on a long-lived process: move the soft limit to now + budget.
        soft = int(_cpu_now() + job_cpu_seconds) + 1
        if hard_cpu != resource.RLIM_INFINITY:
            soft = min(soft, hard_cpu)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard_cpu))
        try:
            fn = functions[name]
            result = fn(payload)
            if not isinstance(result, (bytes, bytearray, memoryview)):
                raise TypeError(f"{name} returned {type(result).__name__}, expected bytes")
            _write(out_fd, STATUS_OK, bytes(result))
        except MemoryError:
            _write(out_fd, STATUS_ERROR, b"MemoryError: memory limit exceeded")
        except Exception as exc:
            _write(out_fd, STATUS_ERROR, f"{type(exc).__name__}: {exc}".encode(errors="replace")[:65536])


def main() -> None:
    """Entry point: ``argv[1]`` is the JSON registry, ``argv[2]`` the per-job CPU seconds."""
    serve(json.loads(sys.argv[1]), float(sys.argv[2]))


# The worker is started as `python -I -c BOOT paths registry cpu`; -I drops the environment and
# script dir, so the parent's import path is handed over explicitly.
BOOT = (
    "import sys, json; sys.path[:0] = json.loads(sys.argv[1]); del sys.argv[1]; "
    "from ledger_net.sandbox.warm_worker import main; main()"
)
