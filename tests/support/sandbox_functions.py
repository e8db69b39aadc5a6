"""Functions the warm-pool tests register by import path (this module holds no tests).

Each one misbehaves in one specific way so a test can check the pool's containment of it.
"""

from __future__ import annotations

import os
import socket
import time


def echo(payload: bytes) -> bytes:
    """Return the payload unchanged: the round-trip probe."""
    return payload


def add_ints(payload: bytes) -> bytes:
    """Sum comma-separated integers: a real (tiny) computation."""
    return str(sum(int(x) for x in payload.decode().split(","))).encode()


def spin(payload: bytes) -> bytes:
    """Burn CPU forever: must be stopped by the per-job CPU or wall limit."""
    while True:
        pass


def sleep_long(payload: bytes) -> bytes:
    """Block without using CPU: only the wall timeout can end it."""
    time.sleep(3600)
    return b""


def crash(payload: bytes) -> bytes:
    """Die abruptly mid-job."""
    os.abort()


def hog_memory(payload: bytes) -> bytes:
    """Allocate far beyond the worker's memory limit."""
    blob = bytearray(4 * 1024**3)
    return bytes(len(blob))


def fork_many(payload: bytes) -> bytes:
    """Try to start 200 children; report how many the sandbox allowed."""
    started = 0
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        started += 1
    return str(started).encode()


def connect(payload: bytes) -> bytes:
    """Try to reach a loopback listener whose port is the payload."""
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", int(payload)))
        return b"connected"
    except OSError as exc:
        return f"refused: {exc}".encode()
    finally:
        s.close()


def write_file(payload: bytes) -> bytes:
    """Try to create the file named by the payload."""
    try:
        with open(payload.decode(), "w") as fh:
            fh.write("escaped")
        return b"written"
    except OSError as exc:
        return f"refused: {exc}".encode()


def shout(payload: bytes) -> bytes:
    """Print a lot (must not corrupt the protocol), then answer."""
    for _ in range(1000):
        print("noise " * 20)
    return b"still fine"


def big_result(payload: bytes) -> bytes:
    """Return more bytes than the result limit allows."""
    return b"x" * int(payload)


def not_bytes(payload: bytes) -> bytes:
    """Return the wrong type."""
    return 42  # type: ignore[return-value]


def where_am_i(payload: bytes) -> bytes:
    """Report the worker's pid and working dir."""
    return f"{os.getpid()} {os.getcwd()}".encode()
