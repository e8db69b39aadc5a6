"""Folding fresh projections to a point of the log (`Fold`, `replay`, `state_view`), resolving
OFFSET | HASH | TIME points, diffing two points and stepping event by event (see the package
docstring for what these views promise)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table

from ..core.money import to_credits
from ..errors import LedgerError
from ..ledger.chain import Ledger
from ..ledger.events import Event
from ..ledger.store import StoredEvent
from ..projections.base import Context, Projection
from ..projections.consistency import HISTORY_BATCH
from ..projections.reputation import level_of
from ..projections.runner import ProjectionSet, default_projections, state_hash_of

History = dict[Table, list[dict[str, Any]]]
"""History rows handed over by a fold, by table (`Projection.take_history`)."""
SECTIONS = ("balances", "tasks", "chunks", "reputation", "nodes")
"""Keyed projection tables shown by replay, step and diff (histories are append-only logs)."""
HIDDEN_FIELDS = frozenset({"spec"})  # a task's full config: large, and fixed at submission
MONEY_FIELDS = frozenset({"balance", "escrow", "incoming", "vouchers", "minted", "burnt", "earned", "spent", "sent",
                          "received", "paid", "refund", "max_price", "price", "payment", "amount", "delta",
                          "balance_after", "running"})
EPOCH_SECONDS_FROM = 10**9  # a bare integer this large is a time (2001-09-09 on), not an offset


# ----------------------------------------------------------------- points

def parse_time(text: str) -> int | None:
    """Milliseconds since the epoch for ISO-8601 (naive means UTC) or epoch seconds
    (`@1700000000`, `1700000000.5`, or an integer >= 10**9); None if `text` is neither."""
    value = text.strip()
    if value.startswith("@"):
        value = value[1:]
        try:
            return _ms(float(value))
        except ValueError:
            return None
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if "." in value or number >= EPOCH_SECONDS_FROM:
            return _ms(number)
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _ms(seconds: float) -> int | None:
    """Epoch seconds as milliseconds, clamped to the signed 64 bits a database column holds
    (so `@1e30` means "after everything", not an overflow); None for NaN and infinities."""
    if not math.isfinite(seconds):
        return None
    return max(-(2**63), min(2**63 - 1, int(seconds * 1000)))


def resolve_point(ledger: Ledger, spec: int | str | None) -> int:
    """An offset from OFFSET, an event HASH or a TIME (the last event whose author clock
    is at or before it); None means the end of the log. LedgerError if it names nothing."""
    last = ledger.store.last_offset()
    if spec is None:
        return last
    if isinstance(spec, int):
        offset = spec
    else:
        text = spec.strip()
        lowered = text.lower()
        if len(lowered) == 64 and all(c in "0123456789abcdef" for c in lowered):
            found = ledger.store.offset_of(lowered)
            if found is None:
                raise LedgerError(f"no event {lowered} in this ledger")
            return found
        ms = parse_time(text)
        if ms is not None:
            return ledger.store.offset_at_time(ms)
        if not text.isdigit():
            raise LedgerError(f"{text[:80]!r} is not an offset, an event hash (64 hex) or a time "
                              "(ISO-8601 like 2025-01-31T12:00:00Z, or epoch seconds like @1738324800)")
        offset = int(text)
    if offset < 0 or offset > last:
        raise LedgerError(f"offset {offset} is outside this ledger (0..{last})")
    return offset


def context_of(ledger: Ledger) -> Context:
    """The network facts projections may read; the same as `ProjectionRunner.context()`."""
    state = ledger.state
    params = state.genesis.body.get("params", {}) if state.genesis else {}
    return Context(state.issuers, dict(state.frozen), params)


# ----------------------------------------------------------------- folding

class Fold(ProjectionSet):
    """Fresh projections folded over the stored log up to an offset; runner-like
    (`fold.balances`, `state_hash()`), so `audit.audit` can read it."""

    def __init__(self, ledger: Ledger, projections: Sequence[Projection] | None = None) -> None:
        self.ledger = ledger
        self._own(projections if projections is not None else default_projections())
        self.ctx = context_of(ledger)
        self.offset = 0
        self.decimals = ledger.state.decimals

    def apply(self, row: StoredEvent, event: Event | None = None) -> Event:
        """Fold one stored row (with its stored verdict); `event` if the caller already parsed it."""
        if event is None:
            event = Event.from_stored(row.raw, row.sig, row.hash)
        reason = None if row.valid else row.reason
        for p in self.projections:
            p.apply(row.offset, event, reason, self.ctx)
        self.offset = row.offset
        return event

    def rows(self, until: int | None = None) -> Iterator[StoredEvent]:
        """The stored events after this fold's offset (up to `until`), not yet applied."""
        return self.ledger.store.select_events(after=self.offset, until=until)

    def advance(self, until: int | None = None, tick: Callable[[int], None] | None = None,
                on_history: Callable[[History], None] | None = None) -> Fold:
        """Fold every stored event with offset in (self.offset, until].

        The history rows folded (a row per money event or feedback) are handed to
        `on_history`, or dropped, every `HISTORY_BATCH` events and at the end, so a replay
        of a long log holds state per account, not per event (`apply` alone keeps them:
        the audit takes them itself)."""
        for folded, row in enumerate(self.rows(until), 1):
            self.apply(row)
            if tick is not None:
                tick(1)
            if folded % HISTORY_BATCH == 0:
                self.hand_over(on_history)
        self.hand_over(on_history)
        if until is not None:
            self.offset = max(self.offset, until)
        return self

    def hand_over(self, on_history: Callable[[History], None] | None = None) -> None:
        """Take the history rows folded since the last hand-over from every projection
        and give them to `on_history` (None: forget them; nothing here writes them)."""
        taken: History = {}
        for p in self.projections:
            taken.update(p.take_history())
        if on_history is not None:
            on_history(taken)

    def state_hash(self) -> str:
        """The runner's state hash of these projections (the very same function, so a replay
        to the end equals `runner.state_hash()` of a node holding the same events)."""
        return state_hash_of(self.projections)

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every keyed row, by section and key (a deep copy: it does not move with the fold)."""
        out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SECTIONS}
        for p in self.projections:
            for table, rows in p.rows().items():
                if table.name in out:
                    out[table.name].update(keyed_rows(table, rows))
        return copy.deepcopy(out)


def keyed_rows(table: Any, rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows by their primary key (`task#chunk` for composite keys), without key and hidden columns."""
    pk = [c.name for c in table.primary_key.columns]
    out = {}
    for row in rows:
        key = "#".join(str(row[c]) for c in pk)
        out[key] = {k: v for k, v in row.items() if k not in pk and k not in HIDDEN_FIELDS}
    return out


def replay(ledger: Ledger, until: int | str | None = None, tick: Callable[[int], None] | None = None) -> Fold:
    """The projections at a point (see `resolve_point`)."""
    return Fold(ledger).advance(resolve_point(ledger, until), tick)


def state_view(fold: Fold) -> dict[str, Any]:
    """What an operator reads at a point: balances, tasks, reputation (base units for money)."""
    tasks = fold.tasks
    reputation = fold.reputation
    nodes = fold.nodes.nodes
    return {
        "offset": fold.offset,
        "decimals": fold.decimals,
        "state_hash": fold.state_hash(),
        "balances": {k: dict(v) for k, v in sorted(fold.balances.accounts.items())},
        "tasks": {tid: {"status": row["status"], "task_type": row["task_type"], "owner": row["owner"],
                        "progress": tasks.progress(tid), "chunks_total": row["chunks_total"],
                        "chunks_done": row["chunks_done"], "escrow": row["escrow"], "paid": row["paid"],
                        "refund": row["refund"], "reason": row["reason"]}
                  for tid, row in sorted(tasks.tasks.items())},
        "reputation": {k: {"score_ppm": row["score_ppm"], "level": level_of(row["score_ppm"]),
                           "feedback_count": row["feedback_count"], "forked": bool(row["forked"])}
                       for k, row in sorted(reputation.subjects.items())},
        "nodes": {k: {"name": row["name"], "status": row["status"], "url": row["url"]}
                  for k, row in sorted(nodes.items())},
    }


# ----------------------------------------------------------------- diffs

def diff_rows(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    """`{field: [old, new]}` of the changed fields; a whole row as `{"added"|"removed": row}`."""
    if before == after:
        return None
    if before is None:
        return {"added": after}
    if after is None:
        return {"removed": before}
    changed = {k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after))
               if before.get(k) != after.get(k)}
    return changed or None


def diff_states(a: dict[str, dict[str, dict[str, Any]]], b: dict[str, dict[str, dict[str, Any]]]
                ) -> dict[str, dict[str, Any]]:
    """Section -> key -> changed fields, between two snapshots (only what differs)."""
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        rows_a, rows_b = a.get(section, {}), b.get(section, {})
        changes = {}
        for key in sorted(set(rows_a) | set(rows_b)):
            change = diff_rows(rows_a.get(key), rows_b.get(key))
            if change is not None:
                changes[key] = change
        if changes:
            out[section] = changes
    return out


def diff_points(ledger: Ledger, a: int | str, b: int | str, tick: Callable[[int], None] | None = None
                ) -> dict[str, Any]:
    """The state difference from point A to point B (one fold, snapshots at both)."""
    off_a, off_b = resolve_point(ledger, a), resolve_point(ledger, b)
    fold = Fold(ledger).advance(min(off_a, off_b), tick)
    first, hash_first = fold.snapshot(), fold.state_hash()
    fold.advance(max(off_a, off_b), tick)
    second, hash_second = fold.snapshot(), fold.state_hash()
    if off_a > off_b:
        first, second, hash_first, hash_second = second, first, hash_second, hash_first
    return {"a": {"offset": off_a, "state_hash": hash_first}, "b": {"offset": off_b, "state_hash": hash_second},
            "decimals": fold.decimals, "events_between": _count_between(ledger, off_a, off_b),
            "changes": diff_states(first, second)}


def _count_between(ledger: Ledger, a: int, b: int) -> int:
    lo, hi = min(a, b), max(a, b)
    return sum(len(batch) for batch in ledger.store.select_rows(after=lo, until=hi)) if hi > lo else 0


# ----------------------------------------------------------------- stepping

def event_summary(event: Event, decimals: int) -> str:
    """One readable line of an event's body (money in credits, hashes shortened)."""
    parts = []
    for key in sorted(event.body):
        value = event.body[key]
        if key in ("spec", "params", "capabilities", "result", "load", "usage", "event_a", "event_b", "blobs"):
            continue
        if key in MONEY_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            value = f"{to_credits(value, decimals):.{decimals}f}".rstrip("0").rstrip(".")
        elif isinstance(value, str) and len(value) == 64:
            value = value[:12] + "…"
        elif isinstance(value, (dict, list)):
            text = orjson.dumps(value).decode()
            value = text if len(text) <= 40 else text[:37] + "…"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def describe_row(row: StoredEvent, event: Event | None, decimals: int) -> dict[str, Any]:
    return {"offset": row.offset, "hash": row.hash, "author": row.author, "seq": row.seq, "type": row.type,
            "ts": row.ts, "valid": bool(row.valid), "reason": row.reason,
            "summary": event_summary(event, decimals) if event is not None else ""}


def steps(ledger: Ledger, after: int = 0, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Event by event from offset `after`: the event and the rows it changed (before → after)."""
    fold = Fold(ledger).advance(after)
    seen: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SECTIONS}
    for p in fold.projections:  # the state before the first step; start dirty tracking afresh
        for table, rows in p.rows().items():
            if table.name in seen:
                seen[table.name].update(copy.deepcopy(keyed_rows(table, rows)))
        p.dirty_rows()
    for row in fold.ledger.store.select_events(after=after, limit=limit):
        event = fold.apply(row)
        changes: dict[str, dict[str, Any]] = {}
        for p in fold.projections:
            for table, (_, rows) in p.dirty_rows().items():
                if table.name not in seen:
                    continue
                for key, new in keyed_rows(table, rows).items():
                    change = diff_rows(seen[table.name].get(key), new)
                    if change is not None:
                        changes.setdefault(table.name, {})[key] = change
                        seen[table.name][key] = copy.deepcopy(new)
        yield {**describe_row(row, event, fold.decimals), "changes": changes}
