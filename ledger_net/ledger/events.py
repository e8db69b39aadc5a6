"""The signed event: an envelope around a typed body, with its canonical bytes.

Envelope (all inside the signed bytes): `v` format version, `net` network id (the
genesis hash; empty in the genesis itself), `author` ed25519 public key hex, `seq`
1.. within the author's chain, `prev` hash of the author's previous event (null at
seq 1), `deps` sorted hashes of other events this one causally needs, `type`,
`body`, `ts` author's clock in ms (informative, never trusted).

`hash` is SHA-256 of the canonical bytes; `sig` is the author's ed25519 signature
of that 32-byte digest. Events are immutable; they are built either by signing
(`Event.create`) or by parsing received bytes (`Event.from_wire`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import ChainError, EncodingError, SchemaError, SignatureError
from . import encoding, wire
from .identity import Identity, is_public_key, verify
from .schemas import validate_body

FORMAT_VERSION = 1
MAX_DEPS = 64
MAX_EVENT_BYTES = 64 << 10  # canonical bytes of one event; bigger payloads travel as blobs named by hash
# A fork proof quotes two events of up to MAX_EVENT_BYTES each as JSON strings (escaping at
# most doubles them), so it alone may be bigger: it must be able to prove any fork.
MAX_FORK_PROOF_BYTES = 4 * MAX_EVENT_BYTES + 4096
FORK_PROOF_TYPE = "fork.proof"
# A checkpoint conflict quotes two checkpoint events the same way, and gets the same room.
_QUOTING_TYPES = frozenset({FORK_PROOF_TYPE, "checkpoint.conflict"})
GENESIS = "network.genesis"
_ENVELOPE_KEYS = frozenset({"v", "net", "author", "seq", "prev", "deps", "type", "body", "ts"})


@dataclass(frozen=True, slots=True)
class Event:
    net: str
    author: str
    seq: int
    prev: str | None
    deps: tuple[str, ...]
    type: str
    body: dict[str, Any]
    ts: int
    raw: bytes = field(repr=False)
    hash: str
    sig: bytes = field(repr=False)

    # ----------------------------------------------------------------- building
    @classmethod
    def create(
        cls,
        identity: Identity,
        *,
        net: str,
        seq: int,
        prev: str | None,
        type: str,
        body: dict[str, Any],
        deps: Iterable[str] = (),
        ts: int | None = None,
    ) -> Event:
        """Validate, encode, hash and sign a new event of `identity`'s chain."""
        envelope = {
            "v": FORMAT_VERSION,
            "net": net,
            "author": identity.node_id,
            "seq": seq,
            "prev": prev,
            "deps": sorted(set(deps)),
            "type": type,
            "body": body,
            "ts": int(time.time() * 1000) if ts is None else ts,
        }
        validate_envelope(envelope)
        raw = encoding.canonical_bytes(envelope)
        check_size(type, raw)
        digest = encoding.digest(raw)
        return cls._from_envelope(envelope, raw, digest.hex(), identity.sign(digest))

    @classmethod
    def from_wire(cls, raw: bytes, sig: bytes) -> Event:
        """Parse received bytes; checks form and schema, not the signature (see `verify_signature`)."""
        if not isinstance(raw, (bytes, bytearray)):
            raise EncodingError("event bytes missing")
        if len(raw) > MAX_FORK_PROOF_BYTES:  # before parsing: no work for what is surely too big
            check_size(None, raw)
        if not isinstance(sig, (bytes, bytearray)) or len(sig) != 64:
            raise SignatureError("a signature is exactly 64 bytes")
        raw = bytes(raw)
        envelope = encoding.decode(raw)
        validate_envelope(envelope)
        check_size(envelope["type"], raw)
        return cls._from_envelope(envelope, raw, encoding.content_hash(raw), bytes(sig))

    @classmethod
    def from_stored(cls, raw: bytes, sig: bytes, hash_: str) -> Event:
        """Trusted fast path for rows of the local store only (rebuilds, replays): they were
        checked in full (canonical form, schema, hash, signature) before they were stored,
        so they are parsed without re-checking. Never use it for bytes from a peer."""
        return cls._from_envelope(orjson.loads(raw), bytes(raw), hash_, bytes(sig))

    @classmethod
    def from_checked(cls, raw: bytes, sig: bytes, hash_: str) -> Event:
        """`raw` passed every check of `from_wire` and its signature verified, in a worker
        process (`crypto_pool.check_wire`), and `hash_` was taken of these bytes here: built
        without checking again, as `from_stored` builds a stored row."""
        return cls._from_envelope(orjson.loads(raw), bytes(raw), hash_, bytes(sig))

    @classmethod
    def from_json(cls, item: Any) -> Event:
        """Parse the wire object `{"raw": <canonical JSON text>, "sig": <hex>}`."""
        if not wire.is_wire(item):
            raise EncodingError(f"an event travels as {wire.SHAPE}")
        try:
            sig = bytes.fromhex(item["sig"])
        except ValueError:
            raise SignatureError("signature is not hex") from None
        return cls.from_wire(item["raw"].encode("utf-8"), sig)

    @classmethod
    def _from_envelope(cls, env: dict[str, Any], raw: bytes, hash_: str, sig: bytes) -> Event:
        return cls(env["net"], env["author"], env["seq"], env["prev"], tuple(env["deps"]), env["type"],
                   env["body"], env["ts"], raw, hash_, sig)

    # ---------------------------------------------------------------- checking
    def verify_signature(self) -> bool:
        return verify(self.author, bytes.fromhex(self.hash), self.sig)

    def require_signature(self) -> None:
        if not self.verify_signature():
            raise SignatureError(f"bad signature on event {self.hash} by {self.author[:16]}… seq {self.seq}")

    # ---------------------------------------------------------------- exposing
    def to_json(self) -> dict[str, str]:
        """The event's wire form."""
        return wire.to_wire(self.raw, self.sig)

    def describe(self) -> dict[str, Any]:
        """A readable view for feeds, logs and the CLI."""
        return {"hash": self.hash, "author": self.author, "seq": self.seq, "prev": self.prev,
                "deps": list(self.deps), "type": self.type, "body": self.body, "ts": self.ts,
                "net": self.net, "sig": self.sig.hex()}

    @property
    def is_genesis(self) -> bool:
        return self.type == GENESIS


class EventTooLarge(EncodingError):
    """An event over the documented size limit (`MAX_EVENT_BYTES`)."""


def max_event_bytes(event_type: str | None) -> int:
    """The most canonical bytes an event of `event_type` may have (see `check_size`)."""
    return MAX_FORK_PROOF_BYTES if event_type in _QUOTING_TYPES else MAX_EVENT_BYTES


def check_size(event_type: str | None, raw: bytes) -> None:
    """Refuse an event bigger than the documented maximum, on append and on ingest alike.
    Operands, payloads and results above it travel as blobs named by hash, so no single
    event can stall a feed page, a pull or a push (docs/ledger.md, docs/security.md)."""
    limit = max_event_bytes(event_type)
    if len(raw) > limit:
        what = f"a {event_type} event" if event_type else "an event"
        raise EventTooLarge(f"{what} of {len(raw)} canonical bytes exceeds the limit of {limit} bytes; "
                            "large operands and results travel as blobs named by hash")


def validate_envelope(env: Any) -> None:
    if not isinstance(env, dict) or set(env) != _ENVELOPE_KEYS:
        raise SchemaError(f"envelope must have exactly the fields {sorted(_ENVELOPE_KEYS)}")
    if type(env["v"]) is not int or env["v"] != FORMAT_VERSION:
        raise SchemaError(f"unsupported event format version {env['v']!r}")
    if not is_public_key(env["author"]):
        raise SchemaError("author is not a hex ed25519 public key")
    seq = env["seq"]
    if type(seq) is not int or seq < 1:
        raise SchemaError("seq must be an integer >= 1")
    prev = env["prev"]
    if seq == 1 and prev is not None:
        raise ChainError("the first event of a chain has no prev")
    if seq > 1 and not encoding.is_hash(prev):
        raise ChainError("an event after seq 1 names its prev by hash")
    deps = env["deps"]
    if not isinstance(deps, list) or len(deps) > MAX_DEPS or not all(encoding.is_hash(d) for d in deps):
        raise SchemaError(f"deps must be a list of at most {MAX_DEPS} hashes")
    if deps != sorted(set(deps)):
        raise SchemaError("deps must be sorted and unique")
    if type(env["ts"]) is not int:
        raise SchemaError("ts must be an integer of milliseconds")
    if not isinstance(env["type"], str):
        raise SchemaError("type must be a string")
    if env["type"] == GENESIS:
        if env["net"] != "" or seq != 1 or deps:
            raise ChainError("a genesis is seq 1 with an empty net and no deps")
    elif not encoding.is_hash(env["net"]):
        raise ChainError("net must be the genesis hash")
    validate_body(env["type"], env["body"])
