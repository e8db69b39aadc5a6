"""Validity rules: a pure fold that decides whether each event is effective.

`LedgerState` is folded over events in a causal order (an event after its prev
and deps). Every rule reads only the author's own chain prefix and the events
named in `deps`, so an event's verdict is a function of its causal past and every
honest peer reaches the same one, whatever order events arrived in.

An invalid event keeps its place in its author's chain (so later events still
link) but has no effect. Forks are the one input from outside the causal past:
once an equivocation by `author` at `seq` is proven, that author's events from
`seq` on are *void* (no effect), and whatever relied on their effects fails the
ordinary rules (a receipt of a void transfer finds no open credit, and spending
it overdraws). The result is a function of the set of events, so peers converge.

Money is integers of the base unit. Conservation holds after every step:
minted == Σ balance + Σ escrow + Σ in_transit + Σ vouchers + burnt.

Over 400 lines on purpose: the rules are one dispatch table over every event type around one
`LedgerState`, and their source is fingerprinted as a whole for judge snapshots (ledger/snapshot.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChainError, WrongNetwork
from .checkpoint import check_body, cosign_message, note_digest, note_of, signature_ok
from .events import GENESIS, Event


@dataclass
class Account:
    """What the rules know of one author: its chain head and its money."""

    seq: int = 0
    head: str | None = None
    ts: int = 0  # the author's clock at its head (informative)
    balance: int = 0
    escrow: dict[str, int] = field(default_factory=dict)  # open task_id -> escrowed amount
    max_price: dict[str, int] = field(default_factory=dict)  # task_id -> per-chunk price cap
    tasks: set[str] = field(default_factory=set)  # every task_id this author submitted
    paid: set[tuple[str, str]] = field(default_factory=set)  # (task_id, worker) this author paid > 0
    assigned: set[tuple[str, str]] = field(default_factory=set)  # (task_id, worker) this author assigned
    assigned_chunks: set[tuple[str, int, str]] = field(default_factory=set)  # (task_id, chunk, worker) assigned
    rated: set[tuple[str, str]] = field(default_factory=set)  # (task_id, subject) feedback given
    # (task_id, chunk, commitment) of this author's assignments that committed to a check secret
    check_commits: set[tuple[str, int, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Assignment:
    owner: str
    task_id: str
    chunk: int
    worker: str


class LedgerState:
    """The fold that decides validity; also the source of the conservation check."""

    def __init__(self) -> None:
        self.net: str | None = None
        self.genesis: Event | None = None
        self.issuers: frozenset[str] = frozenset()
        self.decimals: int = 6
        self.accounts: dict[str, Account] = {}
        self.in_transit: dict[str, tuple[str, int]] = {}  # source hash -> (recipient, amount)
        self.vouchers: dict[str, tuple[str, str, int]] = {}  # voucher hash -> (issuer, name, amount)
        self.assignments: dict[str, Assignment] = {}
        self.frozen: dict[str, int] = {}  # author -> first forked seq
        self.checkpoints: dict[str, tuple[str, str]] = {}  # checkpoint event hash -> (signer, note digest hex)
        self.minted = 0
        self.burnt = 0

    # ------------------------------------------------------------------ links
    def account(self, author: str) -> Account:
        acct = self.accounts.get(author)
        if acct is None:
            acct = self.accounts[author] = Account()
        return acct

    def check_link(self, event: Event) -> None:
        """Raise ChainError unless `event` is the next link of its author's chain."""
        if event.is_genesis:
            if self.genesis is not None:
                raise ChainError("this ledger already has a genesis")
            return
        if self.net is None:
            raise WrongNetwork("no genesis yet: cannot accept network events")
        if event.net != self.net:
            raise WrongNetwork(f"event belongs to network {event.net[:16]}…, not {self.net[:16]}…")
        acct = self.accounts.get(event.author)
        head_seq = acct.seq if acct else 0
        head = acct.head if acct else None
        if event.seq != head_seq + 1 or event.prev != head:
            raise ChainError(f"event {event.hash[:16]}… (seq {event.seq}) does not follow "
                             f"{event.author[:16]}…'s head (seq {head_seq})")

    # ---------------------------------------------------------------- verdict
    def evaluate(self, event: Event) -> str | None:
        """Why `event` has no effect, or None when it is effective. Pure: changes nothing."""
        fork_seq = self.frozen.get(event.author)
        if fork_seq is not None and event.seq >= fork_seq:
            return f"void: author equivocated at seq {fork_seq}"
        rule = _RULES.get(event.type)
        if rule is None:
            return None
        return rule[0](self, self.account(event.author), event)

    def apply(self, event: Event, reason: str | None) -> None:
        """Advance the author's head and, if effective, apply the event's effect."""
        if event.is_genesis:
            body = event.body
            self.genesis = event
            self.net = event.hash
            self.issuers = frozenset(body["issuers"])
            self.decimals = body["decimals"]
        acct = self.account(event.author)
        acct.seq = event.seq
        acct.head = event.hash
        acct.ts = event.ts
        if reason is None:
            rule = _RULES.get(event.type)
            if rule is not None and rule[1] is not None:
                rule[1](self, acct, event)

    def fold(self, event: Event) -> str | None:
        """Link-check, evaluate and apply in one step; returns the invalid reason."""
        self.check_link(event)
        reason = self.evaluate(event)
        self.apply(event, reason)
        return reason

    # ------------------------------------------------------------ conservation
    def supply(self) -> dict[str, int]:
        balances = sum(a.balance for a in self.accounts.values())
        escrow = sum(sum(a.escrow.values()) for a in self.accounts.values())
        in_transit = sum(amount for _, amount in self.in_transit.values())
        vouchers = sum(amount for _, _, amount in self.vouchers.values())
        return {"minted": self.minted, "balances": balances, "escrow": escrow,
                "in_transit": in_transit, "vouchers": vouchers, "burnt": self.burnt}

    def conserved(self) -> bool:
        s = self.supply()
        return s["minted"] == s["balances"] + s["escrow"] + s["in_transit"] + s["vouchers"] + s["burnt"]

    def spendable(self, author: str) -> int:
        acct = self.accounts.get(author)
        return acct.balance if acct else 0

    def is_established(self, author: str, recipients: set[str] | None = None) -> bool:
        """Whether `author` has a stake here: an issuer, an account holding credits, escrow
        or tasks, or the recipient of credits in transit (`recipients`, from
        `credit_recipients`, when checking many authors). Authors without one are strangers,
        admitted under small quotas (a local admission policy, never part of validity:
        see docs/security.md)."""
        if author in self.issuers:
            return True
        acct = self.accounts.get(author)
        if acct is not None and (acct.balance > 0 or bool(acct.escrow) or bool(acct.tasks)):
            return True
        if recipients is None:
            return any(to == author for to, _ in self.in_transit.values())
        return author in recipients

    def credit_recipients(self) -> set[str]:
        """Everyone credits are on their way to (funded, not yet received)."""
        return {to for to, _ in self.in_transit.values()}

    def open_credits_to(self, recipient: str) -> list[tuple[str, int]]:
        """Credits sent to `recipient` and not yet received in its chain."""
        return [(h, amt) for h, (to, amt) in self.in_transit.items() if to == recipient]


# ---------------------------------------------------------------------- rules
# Each rule is (check, effect): check returns a reason string when the event has
# no effect; effect mutates the state and runs only for effective events.

def _credit(state: LedgerState, event: Event, to: str, amount: int) -> None:
    """Move `amount` toward `to`: straight into the balance of one's own account,
    into transit for anyone else (the recipient's receipt completes it)."""
    if to == event.author:
        state.account(to).balance += amount
    else:
        state.in_transit[event.hash] = (to, amount)


INSUFFICIENT_BALANCE = "insufficient balance"  # how a refusal for want of credits begins (see core.credits)


def _covers(acct: Account, amount: int) -> str | None:
    if acct.balance < amount:
        return f"{INSUFFICIENT_BALANCE}: has {acct.balance}, needs {amount}"
    return None


def _check_mint(state: LedgerState, acct: Account, ev: Event) -> str | None:
    if ev.author not in state.issuers:
        return "only issuer keys named in the genesis may mint"
    return None


def _apply_mint(state: LedgerState, acct: Account, ev: Event) -> None:
    state.minted += ev.body["amount"]
    _credit(state, ev, ev.body["to"], ev.body["amount"])


def _check_burn(state: LedgerState, acct: Account, ev: Event) -> str | None:
    return _covers(acct, ev.body["amount"])


def _apply_burn(state: LedgerState, acct: Account, ev: Event) -> None:
    acct.balance -= ev.body["amount"]
    state.burnt += ev.body["amount"]


def _check_transfer(state: LedgerState, acct: Account, ev: Event) -> str | None:
    if ev.body["to"] == ev.author:
        return "a transfer to oneself moves nothing"
    return _covers(acct, ev.body["amount"])


def _apply_transfer(state: LedgerState, acct: Account, ev: Event) -> None:
    acct.balance -= ev.body["amount"]
    state.in_transit[ev.hash] = (ev.body["to"], ev.body["amount"])


def _check_receive(state: LedgerState, acct: Account, ev: Event) -> str | None:
    source = ev.body["source"]
    if source not in ev.deps:
        return "a receipt names its source in deps"
    open_credit = state.in_transit.get(source)
    if open_credit is None or open_credit[0] != ev.author:
        return "source is not an open credit to this author"
    return None


def _apply_receive(state: LedgerState, acct: Account, ev: Event) -> None:
    _, amount = state.in_transit.pop(ev.body["source"])
    acct.balance += amount


def _check_voucher(state: LedgerState, acct: Account, ev: Event) -> str | None:
    return _covers(acct, ev.body["amount"])


def _apply_voucher(state: LedgerState, acct: Account, ev: Event) -> None:
    acct.balance -= ev.body["amount"]
    state.vouchers[ev.hash] = (ev.author, ev.body["name"], ev.body["amount"])


def _check_settle(state: LedgerState, acct: Account, ev: Event) -> str | None:
    voucher = state.vouchers.get(ev.body["voucher"])
    if voucher is None or voucher[0] != ev.author:
        return "not an open voucher of this author"
    return None


def _apply_settle(state: LedgerState, acct: Account, ev: Event) -> None:
    _, _, amount = state.vouchers.pop(ev.body["voucher"])
    _credit(state, ev, ev.body["to"] or ev.author, amount)


def _check_submit(state: LedgerState, acct: Account, ev: Event) -> str | None:
    if ev.body["task_id"] in acct.tasks:
        return f"task {ev.body['task_id']} was already submitted by this author"
    return _covers(acct, ev.body["escrow"])


def _apply_submit(state: LedgerState, acct: Account, ev: Event) -> None:
    task_id = ev.body["task_id"]
    acct.balance -= ev.body["escrow"]
    acct.escrow[task_id] = ev.body["escrow"]
    acct.max_price[task_id] = ev.body["max_price"]
    acct.tasks.add(task_id)


def _open_task(acct: Account, ev: Event) -> str | None:
    if ev.body["task_id"] not in acct.escrow:
        return f"task {ev.body['task_id']} is not an open task of this author"
    return None


def _check_assign(state: LedgerState, acct: Account, ev: Event) -> str | None:
    reason = _open_task(acct, ev)
    if reason is None and ev.body["price"] > acct.max_price[ev.body["task_id"]]:
        return "assigned price exceeds the task's max_price"
    return reason or _revealed(acct, ev)


def _revealed(acct: Account, ev: Event) -> str | None:
    """A verification record (a verdict's, or a replica's assignment's) reveals the secret the owner
    committed to when it assigned the chunk: it must be the one, or the owner chose its check's
    randomness (or its trust coin) after seeing the result. Every peer refuses it alike."""
    record = ev.body.get("verification")
    if record is None:
        return None
    from ..compute.checks import commitment  # here, not at the top: most events never need numpy's import

    b = ev.body
    if (b["task_id"], b["chunk"], commitment(bytes.fromhex(record["secret"]))) not in acct.check_commits:
        return f"the revealed secret matches no commitment of chunk {b['chunk']} of task {b['task_id']}"
    return None


def _apply_assign(state: LedgerState, acct: Account, ev: Event) -> None:
    b = ev.body
    acct.assigned.add((b["task_id"], b["worker"]))
    acct.assigned_chunks.add((b["task_id"], b["chunk"], b["worker"]))
    if "check_commit" in b:
        acct.check_commits.add((b["task_id"], b["chunk"], b["check_commit"]))
    state.assignments[ev.hash] = Assignment(ev.author, b["task_id"], b["chunk"], b["worker"])


def _check_result(state: LedgerState, acct: Account, ev: Event) -> str | None:
    b = ev.body
    for dep in ev.deps:
        a = state.assignments.get(dep)
        if a and a.worker == ev.author and a.task_id == b["task_id"] and a.chunk == b["chunk"]:
            return None
    return "no assignment of this chunk to the author among its deps"


def _assigned_worker(acct: Account, ev: Event) -> str | None:
    """An owner settles a chunk only with the worker it assigned that chunk to (in its own
    chain, so in the event's causal past): no payment, praise or rejection for anyone else."""
    b = ev.body
    if (b["task_id"], b["chunk"], b["worker"]) not in acct.assigned_chunks:
        return f"worker was not assigned chunk {b['chunk']} of task {b['task_id']} by this author"
    return None


def _check_reject(state: LedgerState, acct: Account, ev: Event) -> str | None:
    return _open_task(acct, ev) or _assigned_worker(acct, ev) or _revealed(acct, ev)


def _check_accept(state: LedgerState, acct: Account, ev: Event) -> str | None:
    reason = _open_task(acct, ev) or _assigned_worker(acct, ev)
    if reason:
        return reason
    b = ev.body
    if b["payment"] > acct.max_price[b["task_id"]]:
        return "payment exceeds the task's max_price"
    if b["payment"] > acct.escrow[b["task_id"]]:
        return "payment exceeds the task's remaining escrow"
    return _revealed(acct, ev)


def _apply_accept(state: LedgerState, acct: Account, ev: Event) -> None:
    b = ev.body
    acct.escrow[b["task_id"]] -= b["payment"]
    if b["payment"] > 0:
        # Only real money makes praise count: a 0 payment (e.g. from a 0-escrow task)
        # would otherwise let an owner praise a colluding worker for free.
        acct.paid.add((b["task_id"], b["worker"]))
        _credit(state, ev, b["worker"], b["payment"])


def _check_close(state: LedgerState, acct: Account, ev: Event) -> str | None:
    reason = _open_task(acct, ev)
    if reason is None and ev.body["refund"] != acct.escrow[ev.body["task_id"]]:
        return f"refund must return the whole remaining escrow ({acct.escrow[ev.body['task_id']]})"
    return reason


def _apply_close(state: LedgerState, acct: Account, ev: Event) -> None:
    acct.balance += acct.escrow.pop(ev.body["task_id"])


def _check_feedback(state: LedgerState, acct: Account, ev: Event) -> str | None:
    b = ev.body
    if b["subject"] == ev.author:
        return "nobody rates themselves"
    if ev.author in state.issuers:
        return None
    task_id = b.get("task_id")
    if task_id is None:
        return "feedback counts only when tied to a task"
    if b["positive"] and (task_id, b["subject"]) not in acct.paid:
        return "praise counts only for a task whose author paid the subject (a non-zero payment)"
    if not b["positive"] and (task_id, b["subject"]) not in acct.assigned:
        return "a complaint counts only for a task whose author assigned work to the subject"
    if (task_id, b["subject"]) in acct.rated:
        return "feedback for this task and subject was already given"
    return None


def _apply_feedback(state: LedgerState, acct: Account, ev: Event) -> None:
    if ev.body.get("task_id") is not None:
        acct.rated.add((ev.body["task_id"], ev.body["subject"]))


def _check_checkpoint(state: LedgerState, acct: Account, ev: Event) -> str | None:
    return check_body(ev.net, ev.author, ev.body)


def _apply_checkpoint(state: LedgerState, acct: Account, ev: Event) -> None:
    state.checkpoints[ev.hash] = (ev.author, note_digest(note_of(ev.net, ev.author, ev.body)).hex())


def _check_cosign(state: LedgerState, acct: Account, ev: Event) -> str | None:
    b = ev.body
    if b["checkpoint"] not in ev.deps:
        return "a cosignature names its checkpoint in deps"
    known = state.checkpoints.get(b["checkpoint"])
    if known is None:
        return "the checkpoint named is not an effective checkpoint.signed"
    signer, note = known
    if signer == ev.author:
        return "a signer does not witness its own checkpoint"
    if b["note"] != note:
        return "note is not the checkpoint's note digest"
    if not signature_ok(ev.author, cosign_message(bytes.fromhex(note)), b["sig"]):
        return "cosignature does not verify under the author's key"
    return None


_Rule = tuple[Callable[[LedgerState, Account, Event], "str | None"],
              "Callable[[LedgerState, Account, Event], None] | None"]

_RULES: dict[str, _Rule] = {
    GENESIS: (lambda s, a, e: None, None),
    "credit.minted": (_check_mint, _apply_mint),
    "credit.burned": (_check_burn, _apply_burn),
    "credit.transfer": (_check_transfer, _apply_transfer),
    "credit.received": (_check_receive, _apply_receive),
    "credit.voucher_issued": (_check_voucher, _apply_voucher),
    "credit.voucher_settled": (_check_settle, _apply_settle),
    "task.submitted": (_check_submit, _apply_submit),
    "task.assigned": (_check_assign, _apply_assign),
    "task.chunk_result": (_check_result, None),
    "task.chunk_accepted": (_check_accept, _apply_accept),
    "task.chunk_rejected": (_check_reject, None),
    "task.completed": (_check_close, _apply_close),
    "task.failed": (_check_close, _apply_close),
    "task.cancelled": (_check_close, _apply_close),
    "reputation.feedback": (_check_feedback, _apply_feedback),
    "checkpoint.signed": (_check_checkpoint, _apply_checkpoint),
    "checkpoint.cosigned": (_check_cosign, None),
}


def effect_summary(state: LedgerState) -> dict[str, Any]:
    """Small structured view used by audits and tests."""
    return {"net": state.net, "issuers": sorted(state.issuers), "supply": state.supply(),
            "frozen": dict(state.frozen), "accounts": len(state.accounts)}
