"""Bundle lines: the NDJSON format (`bundle_line`, `parse_line`), checking one line on a pool
thread (parse, hash, envelope, signature), and reading the input files (line offsets, stdin
spooled to a file so it can be read twice, sizes for a progress bar)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

from ..errors import LedgerError
from ..ledger.events import Event
from ..ledger.judge import FORK_PROOF, parse_fork_proof
from ..ledger.store import StoredEvent
from ..ledger.wire import is_wire, to_wire

CHUNK_LINES = 512
"""Lines handed to a checking thread at a time."""

Tick = Callable[[int], None]


class BundleError(LedgerError):
    """A bundle that cannot be used at all (unreadable file, a bad line where none may be)."""


def bundle_line(row: StoredEvent) -> bytes:
    """One NDJSON line of the audit bundle (the signed bytes verbatim, plus this node's verdict)."""
    return orjson.dumps({"offset": row.offset, "hash": row.hash, "author": row.author, "seq": row.seq,
                         "type": row.type, "ts": row.ts, **to_wire(row.raw, row.sig),
                         "valid": bool(row.valid), "reason": row.reason}) + b"\n"


def parse_line(line: bytes, number: int) -> StoredEvent | str:
    """A bundle line as a StoredEvent, or why it is unreadable. Fields a line lacks are taken
    from its raw bytes where they can be read."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"line {number} is not JSON: {exc}"
    if not is_wire(item):
        return f'line {number} is not a bundle line (needs "raw" and "sig" strings)'
    raw = item["raw"].encode("utf-8")
    try:
        sig = bytes.fromhex(item["sig"])
    except ValueError:
        sig = b""  # verification names it: a signature is 64 bytes
    try:
        envelope = orjson.loads(raw)
        envelope = envelope if isinstance(envelope, dict) else {}
    except orjson.JSONDecodeError:
        envelope = {}

    def pick(name: str, default: Any) -> Any:
        value = item.get(name, envelope.get(name, default))
        return value if isinstance(value, type(default)) else default

    return StoredEvent(pick("offset", number), pick("hash", hashlib.sha256(raw).hexdigest()), pick("author", "?"),
                       pick("seq", 0), pick("type", "?"), pick("ts", 0), raw, sig, bool(item.get("valid", True)),
                       item.get("reason"))


@dataclass
class LineProblem:
    """A line that cannot enter the bundle: where it is and why."""

    source: str
    number: int
    problem: str
    author: str = "?"
    seq: int = 0
    hash: str = ""

    def __str__(self) -> str:
        if self.problem.startswith(f"line {self.number} "):
            return f"{self.source}: {self.problem}"
        return f"{self.source} line {self.number}: {self.problem}"


@dataclass
class _Checked:
    """What a checking thread returns for one line."""

    number: int
    offset: int
    size: int
    event: Event | None = None
    valid: bool = True
    problem: str | None = None
    row: StoredEvent | None = None
    fork: tuple[str, int] | None = None
    claims: tuple[str, int, str] = ("?", 0, "")  # the line's own author, seq, hash (to name it)


def _check(number: int, offset: int, line: bytes, source: str) -> _Checked:
    """Parse, hash and signature-check one line (runs on a pool thread)."""
    out = _Checked(number, offset, len(line))
    row = parse_line(line, number)
    if isinstance(row, str):
        out.problem = row
        return out
    out.row, out.valid, out.claims = row, bool(row.valid), (row.author, row.seq, row.hash)
    try:
        event = Event.from_wire(row.raw, row.sig)
    except LedgerError as exc:
        out.problem = f"event {row.hash[:16]}… is unreadable: {exc}"
        return out
    if event.hash != row.hash:
        out.problem = f"its bytes hash to {event.hash}, not the claimed {row.hash}"
    elif event.author != row.author or event.seq != row.seq:
        out.problem = f"event {row.hash}: stored columns disagree with the bytes"
    elif not event.verify_signature():
        out.problem = f"bad signature on event {row.hash} by {event.author[:16]}… seq {event.seq}"
    if out.problem is None:
        out.event = event
        if event.type == FORK_PROOF:
            try:
                proof = parse_fork_proof(event.body)
            except LedgerError:
                proof = None
            if proof is not None:
                out.fork = (proof.author, proof.seq)
    out.row = None  # the body is read again by offset when it is judged
    return out


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line) of each non-blank line."""
    offset = 0
    for number, line in enumerate(handle, 1):
        if line.strip():
            yield number, offset, line
        offset += len(line)


def _chunks(items: Iterator[tuple[int, int, bytes]], size: int) -> Iterator[list[tuple[int, int, bytes]]]:
    chunk: list[tuple[int, int, bytes]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def spool(path: str) -> str:
    """A bundle path that can be read more than once: stdin ('-') is copied to a temporary
    file first (removed when the process ends)."""
    if path != "-":
        return path
    import atexit

    with tempfile.NamedTemporaryFile(prefix="ledger-net-bundle-", suffix=".ndjson", delete=False) as handle:
        shutil.copyfileobj(sys.stdin.buffer, handle)
    atexit.register(_remove_if_there, handle.name)
    return handle.name


def _remove_if_there(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def input_size(paths: Sequence[str]) -> int:
    """Total bytes of the named files ('-' and unreadable ones count 0)."""
    total = 0
    for p in paths:
        if p != "-":
            try:
                total += os.path.getsize(p)
            except OSError:
                continue
    return total
