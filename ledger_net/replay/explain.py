"""Explaining over a ledger: an account's balance as the history rows that make it up, every
event of a task's life, and one event inspected (verdict, causal links both ways, what it
changed); with the lookups of an account, a task or an event from what a person types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..errors import LedgerError
from ..ledger.chain import Ledger
from ..ledger.events import Event
from ..ledger.store import StoredEvent
from ..projections.consistency import HISTORY_BATCH
from .fold import (
    HIDDEN_FIELDS,
    Fold,
    History,
    describe_row,
    resolve_point,
    steps,
)

# ----------------------------------------------------------------- explaining

def resolve_account(ledger: Ledger, fold: Fold, text: str) -> str:
    """An account key from a key, a unique key prefix, or a node name."""
    accounts = set(fold.balances.accounts) | set(fold.nodes.nodes) | set(ledger.state.accounts)
    if text in accounts:
        return text
    by_prefix = sorted(a for a in accounts if a.startswith(text.lower())) if len(text) >= 4 else []
    if len(by_prefix) == 1:
        return by_prefix[0]
    by_name = sorted(k for k, row in fold.nodes.nodes.items() if row["name"] == text)
    if len(by_name) == 1:
        return by_name[0]
    matches = by_prefix or by_name
    if matches:
        raise LedgerError(f"{text!r} names {len(matches)} accounts: " + ", ".join(m[:16] + "…" for m in matches[:5]))
    raise LedgerError(f"no account {text[:64]!r} in this ledger (give a node id, a unique prefix or a node name)")


def explain_balance(ledger: Ledger, account: str, until: int | str | None = None,
                    tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The history rows that make up `account`'s balance at a point, with a running sum.

    Checks: each row's recorded balance equals the running sum, the sum equals the
    balances projection, and (at the end of the log) the balance the validity rules
    computed independently. `ok` is False if any disagree; `problems` says where."""
    point = resolve_point(ledger, until)
    # The fold hands its history rows over in batches, and only the rows of the accounts the
    # text can name by key or key prefix are kept (memory per account, not per event). A node
    # name resolves only at the end of the fold, so its rows take a second fold.
    prefix = account.lower() if len(account) >= 4 else None
    kept: list[dict[str, Any]] = []

    def keeper(named: Callable[[str], bool]) -> Callable[[History], None]:
        return lambda taken: kept.extend(r for r in taken.get(_history_table(), []) if named(r["account"]))

    fold = Fold(ledger).advance(point, tick, keeper(
        lambda a: a == account or (prefix is not None and a.startswith(prefix))))
    key = resolve_account(ledger, fold, account)
    if key != account and (prefix is None or not key.startswith(prefix)):
        kept.clear()
        Fold(ledger).advance(point, None, keeper(lambda a: a == key))
    history = [r for r in kept if r["account"] == key]
    history.sort(key=lambda r: (r["offset"], r["part"]))
    running, rows, problems = 0, [], []
    for r in history:
        running += r["delta"]
        if r["delta"] and r["balance_after"] != running:
            problems.append(f"offset {r['offset']}: recorded balance {r['balance_after']} but the running sum "
                            f"is {running}")
        rows.append({"offset": r["offset"], "hash": r["event_hash"], "kind": r["kind"], "delta": r["delta"],
                     "amount": r["amount"], "running": running, "counterparty": r["counterparty"],
                     "task_id": r["task_id"], "reason": r["reason"], "ts": r["ts"]})
    balance = fold.balances.balance(key)
    if running != balance:
        problems.append(f"the rows sum to {running} but the balances projection says {balance}")
    at_end = point == ledger.store.last_offset()
    rules_balance = ledger.state.spendable(key) if at_end else None
    if rules_balance is not None and rules_balance != balance:
        problems.append(f"the validity rules say the balance is {rules_balance}, the projection {balance}")
    acct = fold.balances.accounts.get(key)
    node = fold.nodes.nodes.get(key)
    return {"account": key, "name": node["name"] if node else None, "offset": point,
            "decimals": fold.decimals, "rows": rows, "sum": running, "balance": balance,
            "rules_balance": rules_balance, "escrow": acct["escrow"] if acct else 0,
            "incoming": acct["incoming"] if acct else 0, "ok": not problems, "problems": problems}


def _history_table() -> Any:
    from ..projections.tables import credit_history

    return credit_history


def resolve_task(ledger: Ledger, text: str) -> str:
    """A task id from its full id or a unique prefix of the ids submitted in this ledger."""
    ids = {orjson.loads(row.raw)["body"].get("task_id") for row in ledger.store.select_events()
           if row.type == "task.submitted"}
    if text in ids:
        return text
    found = sorted(i for i in ids if isinstance(i, str) and text and i.startswith(text))
    if len(found) == 1:
        return found[0]
    if found:
        raise LedgerError(f"{len(found)} tasks have an id starting with {text[:128]!r}: "
                          + ", ".join(found[:5]) + (", …" if len(found) > 5 else ""))
    return text  # unknown: explain_task says so (or finds a task whose submission is missing here)


def explain_task(ledger: Ledger, task_id: str, tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Every event of a task's life in log order: its own events, the worker's results, the
    payments' receipts; and the task's row as the projection ends up with it. TASK_ID may be
    a unique prefix of a submitted task's id."""
    task_id = resolve_task(ledger, task_id)
    decimals = ledger.state.decimals
    fold = Fold(ledger)
    history: list[dict[str, Any]] = []
    related: set[str] = set()
    for folded, row in enumerate(fold.rows(), 1):
        event = fold.apply(row)
        if tick is not None:
            tick(1)
        if folded % HISTORY_BATCH == 0:
            fold.hand_over()  # no history row is shown here: drop them as the fold goes
        body = event.body
        if body.get("task_id") == task_id or (row.type == "credit.received" and body.get("source") in related):
            related.add(row.hash)
            history.append(describe_row(row, event, decimals))
    if not history:
        raise LedgerError(f"no task {task_id[:128]!r} in this ledger")
    task = fold.tasks.tasks.get(task_id)
    chunks = {str(i): {k: v for k, v in c.items()} for (tid, i), c in sorted(fold.tasks.chunks.items())
              if tid == task_id}
    return {"task_id": task_id, "decimals": decimals,
            "task": {k: v for k, v in task.items() if k not in HIDDEN_FIELDS} if task else None,
            "chunks": chunks, "events": history}


def find_event(ledger: Ledger, text: str) -> StoredEvent:
    """A stored event by hash or unique hash prefix (at least 6 hex characters)."""
    needle = text.strip().lower()
    if not needle or any(c not in "0123456789abcdef" for c in needle):
        raise LedgerError(f"{text[:80]!r} is not an event hash (hex)")
    if len(needle) == 64:
        row = ledger.store.get_event(needle)
        if row is None:
            raise LedgerError(f"no event {needle} in this ledger")
        return row
    if len(needle) < 6:
        raise LedgerError("give at least 6 hex characters of the event hash")
    found = [r for r in ledger.store.select_events() if r.hash.startswith(needle)]
    if len(found) != 1:
        raise LedgerError(f"{len(found)} events have a hash starting with {needle}" if found
                          else f"no event hash starts with {needle}")
    return found[0]


def inspect(ledger: Ledger, text: str) -> dict[str, Any]:
    """One event: its content, verdict (stored and re-checked), offset, the events it names
    (prev, deps), the events that name it, and what it changed in the projections."""
    target = find_event(ledger, text)
    decimals = ledger.state.decimals
    problems = []
    try:
        event = Event.from_wire(target.raw, target.sig)
        if event.hash != target.hash:
            problems.append(f"the stored bytes hash to {event.hash}, not {target.hash}")
        if not event.verify_signature():
            problems.append("bad signature")
    except LedgerError as exc:
        problems.append(f"unreadable: {exc}")
        event = None
    env = orjson.loads(target.raw)
    named = ([env["prev"]] if env.get("prev") else []) + list(env.get("deps", []))
    store = ledger.store
    links = []
    for h in named:
        row = store.get_event(h)
        links.append({"hash": h, "role": "prev" if h == env.get("prev") else "dep",
                      "offset": row.offset if row else None, "type": row.type if row else None,
                      "author": row.author if row else None, "seq": row.seq if row else None})
    dependents = []
    changes: dict[str, Any] = {}
    for step in steps(ledger, after=target.offset - 1, limit=1):
        changes = step["changes"]
    for row in store.select_events(after=target.offset):
        other = orjson.loads(row.raw)
        if other.get("prev") == target.hash or target.hash in other.get("deps", ()):
            dependents.append({"hash": row.hash, "offset": row.offset, "type": row.type, "author": row.author,
                               "seq": row.seq, "role": "prev" if other.get("prev") == target.hash else "dep"})
    return {**describe_row(target, event, decimals), "decimals": decimals, "event": env, "sig": target.sig.hex(),
            "checks_ok": not problems, "problems": problems, "names": links, "named_by": dependents,
            "changes": changes, "forked_author": target.author in ledger.state.frozen}
