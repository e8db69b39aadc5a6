"""Body schemas of every event type, as small declarative field specs.

Schemas check shape only (types, ranges, lengths). Whether an event is *allowed*
(balance covers it, author is the task's owner, …) is the business of `rules`,
which sees the event's causal past.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..blob_names import is_blob_name
from ..errors import SchemaError, UnknownEventType
from .encoding import is_hash
from .identity import is_public_key

Check = Callable[[Any], bool]

MAX_TEXT = 4096
MAX_NAME = 128


def text(max_len: int = MAX_TEXT, min_len: int = 0) -> Check:
    return lambda v: isinstance(v, str) and min_len <= len(v) <= max_len


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any) -> bool:
        return type(v) is int and (lo is None or v >= lo) and (hi is None or v <= hi)

    return check


def boolean(v: Any) -> bool:
    return type(v) is bool


def key(v: Any) -> bool:
    return is_public_key(v)


def event_hash(v: Any) -> bool:
    return is_hash(v)


def blob_name(v: Any) -> bool:
    """A blob reference in either form (``blob_names``: 64-hex SHA-256 or ``b3t:`` + 64 hex)."""
    return is_blob_name(v)


def mapping(v: Any) -> bool:
    return isinstance(v, dict)


def list_of(item: Check, max_len: int = 1024, min_len: int = 0) -> Check:
    return lambda v: isinstance(v, list) and min_len <= len(v) <= max_len and all(item(x) for x in v)


def optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


POSITIVE = integer(lo=1)
NON_NEGATIVE = integer(lo=0)
PPM = integer(lo=0, hi=1_000_000)
TASK_ID = text(max_len=MAX_NAME, min_len=1)


def _fields(required: Mapping[str, Check], optional_fields: Mapping[str, Check] | None = None) -> Check:
    """A nested object with these fields and no others."""
    extra = optional_fields or {}

    def check(v: Any) -> bool:
        return (isinstance(v, dict) and all(k in v and c(v[k]) for k, c in required.items())
                and all(k in required or (k in extra and extra[k](x)) for k, x in v.items()))

    return check


# How an owner verified one result (compute/verdicts.py): the secret it committed to in the
# assignment, the verification mode, the adaptive policy's decision and the check's outcome.
_VERIFICATION = _fields(
    {"secret": event_hash, "mode": text(16), "decision": _fields(
        {"action": text(16), "rate_ppm": PPM, "streak": NON_NEGATIVE, "lies": NON_NEGATIVE},
        {"reason": text(32)})},  # reason: "own result" (the owner trusts its own worker)
    {"check": _fields({"method": text(32), "passed": boolean},
                      {"rounds": NON_NEGATIVE, "samples": list_of(NON_NEGATIVE, 1024),
                       "failed": list_of(NON_NEGATIVE, 16), "modulus": text(32), "reason": text(200)})})


@dataclass(frozen=True)
class BodySchema:
    """Required and optional fields of one event type's body; nothing else is allowed."""

    required: Mapping[str, Check]
    optional: Mapping[str, Check] = field(default_factory=dict)

    def validate(self, event_type: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise SchemaError(f"{event_type}: body must be an object")
        optional_fields = dict(self.optional or {})
        for name, check in self.required.items():
            if name not in body:
                raise SchemaError(f"{event_type}: body lacks field {name!r}")
            if not check(body[name]):
                raise SchemaError(f"{event_type}: field {name!r} has a bad value {body[name]!r:.80}")
        for name, value in body.items():
            if name in self.required:
                continue
            if name not in optional_fields:
                raise SchemaError(f"{event_type}: unknown field {name!r}")
            if not optional_fields[name](value):
                raise SchemaError(f"{event_type}: field {name!r} has a bad value {value!r:.80}")


_USAGE = mapping
_SIG128 = re.compile(r"[0-9a-f]{128}").fullmatch


def _signature(v: Any) -> bool:
    return isinstance(v, str) and _SIG128(v) is not None


def _frontier_entry(v: Any) -> bool:
    """[author key, size >= 1, author root hash]."""
    return isinstance(v, list) and len(v) == 3 and key(v[0]) and POSITIVE(v[1]) and event_hash(v[2])

_CAPABILITIES = mapping

SCHEMAS: dict[str, BodySchema] = {
    # The network's first event; its hash is the network id.
    "network.genesis": BodySchema(
        required={"name": text(MAX_NAME, 1), "issuers": list_of(key, 64, 1), "decimals": integer(0, 12)},
        optional={"params": mapping},
    ),
    "node.joined": BodySchema(
        required={"name": text(MAX_NAME)},
        optional={"url": optional(text(512)), "capabilities": _CAPABILITIES, "node_type": text(32)},
    ),
    "node.updated": BodySchema(
        required={},
        optional={"name": text(MAX_NAME), "url": optional(text(512)), "capabilities": _CAPABILITIES,
                  "load": mapping, "status": text(32)},
    ),
    "node.left": BodySchema(required={"reason": text()}),
    # Money. Amounts are integers of the base unit (10**decimals per credit).
    "credit.minted": BodySchema(required={"to": key, "amount": POSITIVE, "reason": text()}),
    "credit.burned": BodySchema(required={"amount": POSITIVE, "reason": text()}),
    "credit.transfer": BodySchema(required={"to": key, "amount": POSITIVE}, optional={"memo": text()}),
    "credit.received": BodySchema(required={"source": event_hash}),
    "credit.voucher_issued": BodySchema(required={"name": text(MAX_NAME, 1), "amount": POSITIVE},
                                        optional={"memo": text()}),
    "credit.voucher_settled": BodySchema(required={"voucher": event_hash, "to": optional(key)}),
    # Task lifecycle; the owner's escrow lives in the owner's own chain.
    "task.submitted": BodySchema(
        required={"task_id": TASK_ID, "task_type": text(64, 1), "escrow": NON_NEGATIVE,
                  "max_price": NON_NEGATIVE, "chunks": integer(1, 1_000_000), "spec": mapping},
        optional={"priority": integer(0, 10), "replicas": integer(1, 16), "quorum": integer(1, 16),
                  "timeout_ms": POSITIVE, "requirements": mapping, "blobs": list_of(blob_name, 4096)},
    ),
    "task.quote": BodySchema(
        required={"task_id": TASK_ID, "price": NON_NEGATIVE, "inputs": mapping},
        optional={"chunks": list_of(NON_NEGATIVE, 100_000)},
    ),
    "task.assigned": BodySchema(
        required={"task_id": TASK_ID, "chunk": NON_NEGATIVE, "worker": key, "price": NON_NEGATIVE},
        optional={"attempt": NON_NEGATIVE, "deadline_ms": POSITIVE, "payload": lambda v: True,
                  "payload_hash": event_hash, "replica": NON_NEGATIVE, "check_commit": event_hash,
                  "verification": _VERIFICATION},  # a replica's: the decision that replicated the chunk
    ),
    "task.chunk_result": BodySchema(
        required={"task_id": TASK_ID, "chunk": NON_NEGATIVE, "ok": boolean, "result_hash": optional(event_hash)},
        optional={"result": lambda v: True, "usage": _USAGE, "error": text(), "attempt": NON_NEGATIVE},
    ),
    "task.chunk_accepted": BodySchema(
        required={"task_id": TASK_ID, "chunk": NON_NEGATIVE, "worker": key, "payment": NON_NEGATIVE},
        optional={"result_hash": optional(event_hash), "verification": _VERIFICATION},
    ),
    "task.chunk_rejected": BodySchema(
        required={"task_id": TASK_ID, "chunk": NON_NEGATIVE, "worker": key, "reason": text()},
        optional={"verification": _VERIFICATION},
    ),
    "task.completed": BodySchema(
        required={"task_id": TASK_ID, "refund": NON_NEGATIVE},
        optional={"result": lambda v: True, "result_hash": optional(event_hash)},
    ),
    "task.failed": BodySchema(required={"task_id": TASK_ID, "reason": text(), "refund": NON_NEGATIVE}),
    "task.cancelled": BodySchema(required={"task_id": TASK_ID, "reason": text(), "refund": NON_NEGATIVE}),
    # Reputation: scores are parts per million.
    "reputation.feedback": BodySchema(
        required={"subject": key, "positive": boolean, "quality_ppm": PPM, "weight_ppm": PPM},
        optional={"task_id": TASK_ID, "reason": text()},
    ),
    "fork.proof": BodySchema(
        required={"author": key, "seq": POSITIVE, "a": mapping, "b": mapping},
    ),
    # Checkpoints (docs/proofs.md): a signed frontier and state root, witnesses' cosignatures,
    # and the proof that one signer's two checkpoints do not extend each other.
    "checkpoint.signed": BodySchema(
        required={"frontier": list_of(_frontier_entry, 100_000), "frontier_root": event_hash,
                  "authors": NON_NEGATIVE, "events": NON_NEGATIVE, "state_root": event_hash,
                  "state_size": POSITIVE, "ts": NON_NEGATIVE, "sig": _signature},
        optional={"frontier_blob": event_hash},  # a detached frontier (more than FRONTIER_INLINE authors)
    ),
    "checkpoint.cosigned": BodySchema(required={"checkpoint": event_hash, "note": event_hash, "sig": _signature}),
    "checkpoint.conflict": BodySchema(
        required={"signer": key, "seq": POSITIVE, "a": mapping, "b": mapping, "author": key,
                  "proof": list_of(event_hash, 128)},
        optional={"leaves": mapping},  # for a detached frontier: the author's leaf (or neighbours) in each
    ),
}

EVENT_TYPES = frozenset(SCHEMAS)


def validate_body(event_type: str, body: Any) -> None:
    schema = SCHEMAS.get(event_type)
    if schema is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    schema.validate(event_type, body)
