"""The wire form of an event: `{"raw": "<canonical json>", "sig": "<hex>"}`, the one shape
in which events cross the network, fill NDJSON bundles and sit inside fork proofs.

`raw` is the signed canonical bytes as UTF-8 text, verbatim (never re-encoded: a single
changed byte is another event), and `sig` the ed25519 signature in hex. Everything that
writes or recognises the shape calls these functions, so it is spelled once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import StoredEvent

SHAPE = '{"raw": "<canonical json>", "sig": "<hex>"}'
"""The shape, as error messages name it."""


def to_wire(raw: bytes, sig: bytes) -> dict[str, str]:
    """The wire form of signed bytes and their signature."""
    return {"raw": raw.decode("utf-8"), "sig": sig.hex()}


def is_wire(item: Any) -> bool:
    """Whether `item` has the wire form's shape (a dict with string `raw` and `sig`); whether
    the strings hold a valid event is for `Event.from_json` to say."""
    return isinstance(item, dict) and isinstance(item.get("raw"), str) and isinstance(item.get("sig"), str)


def stored_to_wire(row: StoredEvent) -> dict[str, Any]:
    """A feed item: offset, wire form and this node's verdict."""
    return {"offset": row.offset, **to_wire(row.raw, row.sig), "valid": bool(row.valid), "reason": row.reason}


__all__ = ["SHAPE", "is_wire", "stored_to_wire", "to_wire"]
