"""Events arriving over HTTP (pushed to the node, or pulled by sync): wire items parsed and
checked into `Event`s, all or nothing, and a refused ingest mapped onto its 4xx `ApiError`.

Events travel in their wire form `{"raw": "<canonical json>", "sig": "<hex>"}`: the signed
bytes themselves, so nothing is re-serialised before it is verified.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import (
    ChainError,
    EncodingError,
    LedgerError,
    PendingLimitError,
    SchemaError,
    SignatureError,
    UnknownEventType,
    WrongNetwork,
)
from ..ledger.crypto_pool import SignatureChecks, Wire, WireChecks
from ..ledger.events import GENESIS, Event, EventTooLarge
from ..ledger.pending import PendingQuotaError
from ..ledger.wire import SHAPE as WIRE_SHAPE
from ..ledger.wire import is_wire
from .responses import ApiError


def parse_wire_events(items: Sequence[Any], net: str | None, *, skip: Callable[[str], bool] | None = None
                      ) -> list[Event]:
    """Parse wire items into events, refusing the whole list with an `ApiError` naming the
    first bad item. `skip(hash)` drops already-known events before the costly checks."""
    out: list[Event] = []
    geneses: set[str] = set()
    for index, item in enumerate(items):
        where = f"event #{index}"
        if not is_wire(item):
            raise ApiError(400, "malformed_event", f"{where}: an event travels as {WIRE_SHAPE}")
        raw = item["raw"].encode("utf-8")
        digest = hashlib.sha256(raw).hexdigest()
        claimed = item.get("hash")
        if claimed is not None and claimed != digest:
            raise ApiError(400, "bad_hash", f"{where}: claimed hash {str(claimed)[:64]!r} is not the hash of its "
                                            f"bytes ({digest})")
        if skip is not None and skip(digest):
            _check_known_copy(item, where)
            continue
        try:
            event = Event.from_json(item)
        except SignatureError as exc:
            raise ApiError(400, "bad_signature", f"{where}: {exc}") from None
        except EventTooLarge as exc:
            raise ApiError(413, "event_too_large", f"{where}: {exc}") from None
        except SchemaError as exc:
            code = "unknown_type" if isinstance(exc, UnknownEventType) else "schema_error"
            raise ApiError(400, code, f"{where}: {exc}") from None
        except ChainError as exc:
            raise ApiError(400, "chain_error", f"{where}: {exc}") from None
        except EncodingError as exc:
            raise ApiError(400, "malformed_event", f"{where}: {exc}") from None
        if net is not None:
            _check_network(event, net, where)
        elif event.type == GENESIS:
            geneses.add(event.hash)
        elif event.net not in geneses:
            raise ApiError(409, "no_genesis", f"{where}: this node has no network yet; send the genesis first")
        out.append(event)
    return out


def _check_network(event: Event, net: str, where: str) -> None:
    if event.type == GENESIS and event.hash != net:
        raise ApiError(400, "wrong_network", f"{where}: genesis {event.hash[:16]}… is another network's "
                                             f"(this node is on {net[:16]}…)")
    if event.type != GENESIS and event.net != net:
        raise ApiError(400, "wrong_network", f"{where}: event {event.hash[:16]}… belongs to network "
                                             f"{event.net[:16]}…, this node is on {net[:16]}…")


def wire_pairs(items: Sequence[Any], *, skip: Callable[[str], bool],
               prefetch: Callable[[list[str]], None] | None = None
               ) -> tuple[list[Wire], list[str], list[int]] | None:
    """The (canonical bytes, signature) pairs of the items not yet held, their content hashes
    and their indexes, for the worker processes to parse and check (`Ledger.check_wire_ahead`);
    each item's hash is taken once, here (`prefetch(hashes)` first: one store query for the
    page's `skip` questions). Known copies are checked here as `parse_wire_events` checks
    them. None when any item is not plainly well formed (shape, claimed hash, signature hex):
    `parse_wire_events` then names the problem."""
    taken: list[tuple[bytes, bytes, str]] = []
    for item in items:
        if not is_wire(item):
            return None
        try:
            raw, sig = item["raw"].encode("utf-8"), bytes.fromhex(item["sig"])
        except (UnicodeEncodeError, ValueError):
            return None
        digest = hashlib.sha256(raw).hexdigest()
        claimed = item.get("hash")
        if (claimed is not None and claimed != digest) or len(sig) != 64:
            return None
        taken.append((raw, sig, digest))
    if prefetch is not None:
        prefetch([digest for _, _, digest in taken])
    pairs: list[Wire] = []
    hashes: list[str] = []
    indexes: list[int] = []
    for index, (raw, sig, digest) in enumerate(taken):
        if skip(digest):
            _check_known_copy(items[index], f"event #{index}")
            continue
        pairs.append((raw, sig))
        hashes.append(digest)
        indexes.append(index)
    return pairs, hashes, indexes


def checked_wire_events(checks: WireChecks, indexes: Sequence[int], net: str) -> tuple[list[Event], SignatureChecks]:
    """The events of a page `wire_pairs` gave to the workers, once they are done, refused with
    an `ApiError` for the first of another network (as `parse_wire_events` would); a
    malformed event raises its `LedgerError` (the caller parses the page with
    `parse_wire_events` for the peer's error)."""
    events, signatures = checks.result()
    for event, index in zip(events, indexes, strict=True):
        _check_network(event, net, f"event #{index}")
    return events, signatures


def _check_known_copy(item: dict[str, Any], where: str) -> None:
    """A copy of an event this node holds is a duplicate only if its signature verifies:
    the hash covers the bytes, not the signature, so other signature bytes on known bytes
    are a forgery to refuse, not a duplicate to count."""
    try:
        event = Event.from_json(item)
    except LedgerError as exc:
        raise ApiError(400, "bad_signature", f"{where}: copy of a known event is malformed: {exc}") from None
    if not event.verify_signature():
        raise ApiError(400, "bad_signature", f"{where}: the signature on known event {event.hash} does not verify "
                                             "(a forged copy)")


def ledger_error(exc: LedgerError) -> ApiError:
    """Map a refused ingest onto a 4xx answer."""
    if isinstance(exc, PendingQuotaError):
        return ApiError(429, "pending_quota", str(exc))
    if isinstance(exc, PendingLimitError):
        return ApiError(503, "pending_full", str(exc))
    if isinstance(exc, SignatureError):
        return ApiError(400, "bad_signature", str(exc))
    if isinstance(exc, SchemaError):
        return ApiError(400, "schema_error", str(exc))
    if isinstance(exc, EncodingError):
        return ApiError(400, "malformed_event", str(exc))
    if isinstance(exc, ChainError):
        return ApiError(400, "wrong_network" if isinstance(exc, WrongNetwork) else "chain_error", str(exc))
    return ApiError(400, "ledger_error", str(exc))
