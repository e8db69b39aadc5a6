"""Events an engine decides during one step, signed and committed together.

Why: one commit per decision capped a node at a few hundred tiny tasks a second, most of
it spent in SQLite commits. The engine queues a step's decisions here and flushes them
as one batch; a decision the rules refuse is dropped alone (the rest are re-appended one
by one), so one bad decision never sinks a step's others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import LedgerError
from ..ledger.chain import Ledger
from ..ledger.events import Event

log = logging.getLogger(__name__)

Item = tuple[str, dict[str, Any], tuple[str, ...]]
OnEvent = Callable[["Event | None"], None]


class Outbox:
    """Queued local events and what to do once each is signed (or refused: ``None``)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._items: list[Item] = []
        self._callbacks: list[OnEvent | None] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, type_: str, body: dict[str, Any], deps: Iterable[str] = (), on_event: OnEvent | None = None) -> None:
        self._items.append((type_, body, tuple(deps)))
        self._callbacks.append(on_event)

    def extend(self, items: Iterable[Item]) -> None:
        for type_, body, deps in items:
            self.add(type_, body, deps)

    def payments(self, task_id: str) -> int:
        """Escrow of ``task_id`` already promised by queued payments (a refund must leave it)."""
        return sum(body["payment"] for type_, body, _ in self._items
                   if type_ == "task.chunk_accepted" and body["task_id"] == task_id)

    def flush(self) -> list[Event | None]:
        """Sign and commit everything queued; returns the events in order (None where refused)."""
        if not self._items:
            return []
        items, callbacks = self._items, self._callbacks
        self._items, self._callbacks = [], []
        try:
            events: list[Event | None] = list(self.ledger.append_batch(items))
        except LedgerError as exc:
            log.warning("a batch of %d decisions was refused (%s); appending them one by one", len(items), exc)
            events = []
            for item in items:
                try:
                    events.append(self.ledger.append_batch([item])[0])
                except LedgerError as one:
                    log.warning("dropped %s for %s: %s", item[0], item[1].get("task_id", "?"), one)
                    events.append(None)
        for callback, event in zip(callbacks, events, strict=False):
            if callback is not None:
                try:
                    callback(event)
                except Exception:
                    log.exception("outbox callback failed")
        return events
