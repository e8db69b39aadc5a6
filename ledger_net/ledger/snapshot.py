"""Snapshots of the judge: the validity fold (`rules.LedgerState`) as bytes and back.

Opening a ledger used to re-judge every stored event (seconds per 100k events). A
snapshot is the fold's state after the event at some offset, written in the same
transaction as that event (see `Ledger`), so opening loads it and judges only the
events after it. A snapshot must never make a node judge differently from one that
re-judges the whole log, so:

* it names the rules that folded it (`rules_fingerprint`: a hash of the source of the
  rules, the judge, the chain and this codec). Any change to them, even a
  reformat, makes old snapshots unusable and the log is judged again, once;
* it carries a digest of its bytes: a damaged snapshot is refused, never half-read;
* the codec is generic over the state's attributes (dicts keep their insertion order,
  sets are sorted) and refuses any value it does not know (`SnapshotError`) instead
  of leaving it out, so a field added to the rules later cannot be silently dropped;
* the loaded state's attribute names must be exactly those of a fresh `LedgerState`.

`state_digest` hashes the encoded state: two folds with equal digests judge alike.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import inspect
import zlib
from functools import lru_cache
from importlib import metadata, resources
from typing import Any

import orjson

from . import judge, rules
from .events import Event
from .rules import LedgerState

FORMAT = 1
_I64 = (-(2**63), 2**63 - 1)
# Dataclasses the state may hold, by name (anything else is refused), and their fields in
# order: a snapshot stores a dataclass's values by position and names the fields once.
_CLASSES: dict[str, type] = {c.__name__: c for c in (rules.Account, rules.Assignment)}
_FIELDS: dict[str, list[str]] = {name: [f.name for f in dataclasses.fields(c)] for name, c in _CLASSES.items()}


class SnapshotError(ValueError):
    """A snapshot that cannot be written or trusted (unknown value, bad digest, other rules)."""


def _source(name: str) -> str:
    """The text of ledger/`name`, as ``inspect.getsource`` of the module would give it."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _package_version() -> str:
    """ledger_net's installed version (from its metadata: importing the package root here would
    pull the layers above the ledger into it)."""
    try:
        return metadata.version("ledger_net")
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def rules_fingerprint() -> str:
    """A hash naming the judge: the source of the rules, the judge (ledger/judge.py: links
    and evidence), the chain and its delivery (what reaches the judge, in which order) and
    this codec.
    Conservative on purpose: any edit, even a reformat, makes a node judge its log again
    once rather than trust a snapshot of other rules."""
    h = hashlib.sha256(f"ledger_net judge snapshot format {FORMAT}\n".encode())
    # The chain's and the delivery's source is read as text beside this file, not imported: the
    # chain imports this module (through snapshot_keeper), and an import back would be a circle.
    for name, source in (("ledger_net.ledger.rules", lambda: inspect.getsource(rules)),
                         ("ledger_net.ledger.judge", lambda: inspect.getsource(judge)),
                         ("ledger_net.ledger.chain", lambda: _source("chain.py")),
                         ("ledger_net.ledger.delivery", lambda: _source("delivery.py"))):
        try:
            h.update(source().encode())
        except (OSError, TypeError):  # no source shipped: fall back to the package version
            h.update(f"{name} {_package_version()}".encode())
    h.update(inspect.getsource(_enc).encode() + inspect.getsource(_dec).encode())
    return h.hexdigest()


# ------------------------------------------------------------------ the codec
def _enc(value: Any) -> Any:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is int:
        return value if _I64[0] <= value <= _I64[1] else ["i", str(value)]
    if kind is dict:
        return ["d", [[_enc(k), _enc(v)] for k, v in value.items()]]
    if kind is set or kind is frozenset:
        items = [_enc(v) for v in value]
        items.sort(key=orjson.dumps)
        return ["s" if kind is set else "f", items]
    if kind is tuple:
        return ["t", [_enc(v) for v in value]]
    if kind is list:
        return ["l", [_enc(v) for v in value]]
    if kind is Event:
        return ["E", value.raw.hex(), value.sig.hex(), value.hash]
    if _CLASSES.get(kind.__name__) is kind:
        return ["D", kind.__name__, [_enc(getattr(value, name)) for name in _FIELDS[kind.__name__]]]
    raise SnapshotError(f"the judge's state holds a {kind.__name__}, which snapshots do not know")


def _dec(value: Any) -> Any:
    if type(value) is not list:
        return value
    tag, payload = value[0], value[1]
    if tag == "d":
        return {_dec(k): _dec(v) for k, v in payload}
    if tag == "s":
        return {_dec(v) for v in payload}
    if tag == "f":
        return frozenset(_dec(v) for v in payload)
    if tag == "t":
        return tuple(_dec(v) for v in payload)
    if tag == "l":
        return [_dec(v) for v in payload]
    if tag == "i":
        return int(payload)
    if tag == "E":
        return Event.from_stored(bytes.fromhex(payload), bytes.fromhex(value[2]), value[3])
    if tag == "D":
        values = value[2]
        if len(values) != len(_FIELDS[payload]):
            raise SnapshotError(f"snapshot {payload} has {len(values)} fields, the rules' {len(_FIELDS[payload])}")
        return _CLASSES[payload](*[_dec(v) for v in values])
    raise SnapshotError(f"unknown snapshot tag {tag!r}")


class _NoGC:
    """Cyclic GC off while (de)coding: a snapshot is ~30 containers per account, and the
    collections those allocations trigger cost 4x the decoding itself (measured: 0.53 s
    against 0.13 s for orjson.loads of a 10k-account state); nothing here makes cycles."""

    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was:
            gc.enable()


def encode_state(state: LedgerState) -> bytes:
    """The state as canonical bytes (attribute order fixed, insertion order of dicts kept)."""
    attrs = vars(state)
    with _NoGC():
        return orjson.dumps([FORMAT, _FIELDS, [[name, _enc(attrs[name])] for name in sorted(attrs)]])


def decode_state(payload: bytes) -> LedgerState:
    """Rebuild a state from `encode_state` bytes; refuses attributes or dataclass fields
    other than those of the current rules."""
    with _NoGC():
        try:
            fmt, fields, items = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise SnapshotError(f"snapshot is not readable ({exc})") from None
        if fmt != FORMAT:
            raise SnapshotError(f"snapshot format {fmt}, this code reads {FORMAT}")
        if fields != _FIELDS:
            raise SnapshotError(f"snapshot dataclass fields {fields} differ from the rules' {_FIELDS}")
        state = LedgerState()
        expected = set(vars(state))
        values = {name: _dec(v) for name, v in items}
    if set(values) != expected:
        raise SnapshotError(f"snapshot attributes differ from the rules' ({sorted(set(values) ^ expected)})")
    for name, v in values.items():
        setattr(state, name, v)
    return state


def state_digest(state: LedgerState) -> str:
    """sha256 of the encoded state: equal digests, equal judges."""
    return hashlib.sha256(encode_state(state)).hexdigest()


def pack(state: LedgerState) -> tuple[bytes, str]:
    """(stored bytes, their sha256) for a snapshot row."""
    data = zlib.compress(encode_state(state), 1)
    return data, hashlib.sha256(data).hexdigest()


def unpack(data: bytes, digest: str, rules_name: str) -> LedgerState:
    """The state of a snapshot row, or SnapshotError if it is of other rules or damaged."""
    if rules_name != rules_fingerprint():
        raise SnapshotError("it was written by other rules (or another version of this code)")
    if hashlib.sha256(data).hexdigest() != digest:
        raise SnapshotError("its bytes do not match its digest (damaged)")
    try:
        payload = zlib.decompress(data)
    except zlib.error as exc:
        raise SnapshotError(f"it does not decompress ({exc})") from None
    try:
        return decode_state(payload)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"it does not decode ({type(exc).__name__}: {exc})") from None
