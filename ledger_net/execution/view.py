"""The owner policy's window on a node: the ledger's state, its projections, blobs and router.

Why apart: the owner policy is pure and asks an `OwnerView` (owner_policy.py) what it must
know of the world; this is the one the engine gives it. Tests give it a small fake instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Mapping
from typing import Any, Protocol

import orjson

from ..compute import compare, unpack, verdicts
from ..compute.trust import CHECK, Standing, decide
from ..compute.verdicts import Judgement
from ..errors import LedgerNetError, TaskError
from ..ledger.chain import Ledger
from ..ledger.events import Event
from ..market.routing import Bid as RouterBid
from ..projections.runner import ProjectionRunner
from . import submission
from .answers import answer_body, local_blobs, payload_blobs
from .blobs import BlobStore
from .outbox import Outbox
from .owner import Attempt, Bid, ChunkWork, OwnedTask

PPM = 1_000_000
_SECRET_TAG = b"ledger_net/check-secret/v1\x00"


def check_label_of(task: OwnedTask, chunk: ChunkWork, attempt: Attempt) -> str:
    """An assignment's label when it was not kept (an older attempt): its place in the chunk."""
    return f"{task.task_id}/{chunk.index}/{chunk.attempts.index(attempt)}/{attempt.worker}"


class Parts(Protocol):
    """What the view reads: the engine's parts (TaskEngine has them all)."""

    me: str
    quote_window: float
    ledger: Ledger
    runner: ProjectionRunner
    blobs: BlobStore
    outbox: Outbox
    pricing: Any
    router: Any

    def off_loop(self, work: Callable[[], Any], then: Callable[[Any], None], task_id: str) -> None: ...


class LedgerView:
    """The owner policy's window on this node: the ledger's state, projections, blobs, router."""

    def __init__(self, engine: Parts) -> None:
        self.engine = engine
        self.me = engine.me
        self._specs: dict[str, dict[str, Any]] = {}
        self._judged: dict[tuple[str, Standing], Judgement] = {}
        self._checking: set[str] = set()  # assignments whose check runs in a thread
        self._outcomes: dict[str, tuple[dict[str, Any], bool]] = {}  # assignment -> its check's record, passed
        self._secrets: dict[str, bytes] = {}  # check_secret by label

    @property
    def quote_window(self) -> float:
        return self.engine.quote_window

    @property
    def frozen(self) -> Container[str]:
        return self.engine.ledger.state.frozen

    def is_open(self, task_id: str) -> bool:
        return task_id in self.engine.ledger.state.account(self.me).escrow

    def escrow(self, task_id: str) -> int | None:
        """What the task's escrow keeps after the payments already queued (None: not open)."""
        escrow = self.engine.ledger.state.account(self.me).escrow.get(task_id)
        return None if escrow is None else escrow - self.engine.outbox.payments(task_id)

    def rated(self, task_id: str, worker: str) -> bool:
        return (task_id, worker) in self.engine.ledger.state.account(self.me).rated

    def expected_bidders(self) -> set[str]:
        nodes, frozen = self.engine.runner.nodes.nodes, self.engine.ledger.state.frozen
        return {n for n, row in nodes.items() if row["status"] == "online" and n not in frozen} | {self.me}

    def verify_quote(self, body: dict[str, Any]) -> bool:
        return bool(self.engine.pricing.verify_quote(body))

    def router_bids(self, bids: list[Bid]) -> list[RouterBid]:
        """Bids weighed by this node's own view: reputation and capabilities from its projections."""
        nodes, reputation = self.engine.runner.nodes.nodes, self.engine.runner.reputation
        out = []
        for bid in bids:
            row = nodes.get(bid.worker)
            if row is None or row["forked_at"] is not None:
                continue
            load = bid.inputs.get("load_ppm", 0)
            out.append(RouterBid(worker=bid.worker, price=bid.price, reputation_ppm=int(reputation.score(bid.worker)),
                                 load_ppm=load if type(load) is int and 0 <= load <= PPM else PPM,
                                 capabilities=orjson.loads(row["capabilities"]), quote_hash=bid.quote_hash))
        return out

    def route(self, indexes: list[int], bids: list[RouterBid], requirements: dict[str, Any], *, replicas: int,
              current_load: dict[str, int], max_price: int) -> Mapping[int, list[str]]:
        plan: Mapping[int, list[str]] = self.engine.router.assign(
            indexes, bids, requirements, replicas=replicas, exclude=set(), current_load=current_load,
            max_price=max_price)
        return plan

    def no_offer_hint(self, task: OwnedTask) -> str:
        return self._sandbox_hint(task.requirements) or self._budget_hint(task)

    def _budget_hint(self, task: OwnedTask) -> str:
        """Why nobody bid, when the cause is the budget: nodes do not quote above a task's max_price,
        so the owner prices one chunk itself (the same pure formula every node uses) and says by how much."""
        pricing = self.engine.pricing
        market = pricing.snapshot(self.engine.runner, self.me, load_ppm=0)
        quote = pricing.quote(work_units=max(0, task.work_units), priority=min(max(task.priority, 1), 4),
                              market=market)
        if quote is None or quote.price <= task.per_chunk_cap:
            return ""
        scale = 10 ** self.engine.ledger.state.decimals
        needed = quote.price * len(task.chunks) * max(1, task.replicas)
        return (f": its budget is short: it allows {task.per_chunk_cap / scale:g} credits per chunk, and this "
                f"node's own quote for one is {quote.price / scale:g}; a max_price of at least "
                f"{needed / scale:g} credits would cover {len(task.chunks)} chunk(s)")

    def _sandbox_hint(self, requirements: dict[str, Any]) -> str:
        """Why nobody bid, when the cause is the sandbox asked for: each node publishes the
        sandbox types it offers (none below its floor) in its capabilities."""
        wanted = requirements.get("sandbox_type")
        if not wanted:
            return ""
        nodes = self.engine.runner.nodes.nodes
        offered = sorted({t for row in nodes.values()
                          for t in (orjson.loads(row["capabilities"]).get("sandbox_types") or [])})
        if wanted in offered:
            return ""
        return (f": no known node offers sandbox {wanted!r} (offered: {', '.join(offered) or 'none'}; "
                "a node offers no type weaker than its sandbox floor)")

    def restore(self, event: Event) -> OwnedTask | None:
        return submission.restore(event, self.engine.blobs)

    def has_result(self, result_hash: str) -> bool:
        return bool(self.engine.blobs.local_wire(result_hash)[0])

    def answer(self, task: OwnedTask, accepted: dict[int, Attempt]) -> dict[str, Any]:
        return answer_body(self.engine.blobs, task, accepted)

    def agree(self, task: OwnedTask, chunk: ChunkWork, a: Attempt, b: Attempt) -> bool:
        """Whether two reported results of ``chunk`` agree per the task's result kind
        (compute.compare): equal hashes, or float results within the computation's bound."""
        if a.result_hash == b.result_hash:
            return True
        spec = self._comparison(task)
        if spec["kind"] == "exact":
            return False
        blobs = self.engine.blobs
        try:
            payload = unpack(chunk.payload, local_blobs(blobs, chunk.payload), verify=False)
            va, vb = self._value(a), self._value(b)
            return compare.agree(spec, va, vb, payload)
        except (LedgerNetError, KeyError, TypeError, ValueError):
            return False  # a result that cannot be read or compared agrees with nothing

    def check_secret(self, label: str) -> bytes:
        """The owner's secret for one assignment: a hash of its own (deterministic) signature of the
        label, so it is re-derived after a restart and unknowable to anyone without the key."""
        secret = self._secrets.get(label)
        if secret is not None:  # asked at the assignment and again at the verdict: one signature
            return secret
        identity = self.engine.ledger.identity
        if identity is None:
            raise TaskError("this node cannot sign: no secret for checks")
        secret = hashlib.sha256(identity.sign(_SECRET_TAG + label.encode())).digest()
        if len(self._secrets) > 10_000:
            self._secrets.clear()
        self._secrets[label] = secret
        return secret

    def judge(self, task: OwnedTask, chunk: ChunkWork, attempt: Attempt, standing: Standing) -> Judgement | None:
        """compute.verdicts.judge on this chunk's payload and the attempt's result (cached per
        assignment and standing: a look may judge again before the verdict commits). A check runs
        in a thread, off the engine's loop: None until it is done (the engine looks at the task
        again then). Its outcome is kept per assignment, so a standing that moved meanwhile only
        changes the decision, made here at once, never runs the check again."""
        key = (attempt.assignment, standing)
        cached = self._judged.get(key)
        if cached is not None:
            return cached
        secret = self.check_secret(attempt.check_label or check_label_of(task, chunk, attempt))
        if attempt.worker == self.me:  # trusted as the owner trusts itself: nothing read, nothing checked
            return self._keep(key, self._judge_now(task, chunk, attempt, standing, secret))
        decision = decide(standing, secret, True) if task.verification.get("mode") == "check" else None
        if decision is None or decision.action != CHECK:
            return self._keep(key, self._judge_now(task, chunk, attempt, standing, secret))
        outcome = self._outcomes.get(attempt.assignment)
        if outcome is None:
            if attempt.assignment not in self._checking:
                self._checking.add(attempt.assignment)

                def done(judged: Judgement) -> None:
                    self._checking.discard(attempt.assignment)
                    if len(self._outcomes) > 10_000:
                        self._outcomes.clear()
                    self._outcomes[attempt.assignment] = (dict(judged.record.get("check") or {}), judged.passed is True)
                self.engine.off_loop(lambda: self._judge_now(task, chunk, attempt, standing, secret), done,
                                     task.task_id)
            return None
        check, passed = outcome
        record = {"secret": secret.hex(), "mode": CHECK, "decision": decision.record(), "check": check}
        return self._keep(key, Judgement(CHECK, passed, record))

    def _keep(self, key: tuple[str, Standing], judged: Judgement) -> Judgement:
        if len(self._judged) > 10_000:
            self._judged.clear()
        self._judged[key] = judged
        return judged

    def _judge_now(self, task: OwnedTask, chunk: ChunkWork, attempt: Attempt, standing: Standing,
                   secret: bytes) -> Judgement:
        blobs = self.engine.blobs
        try:
            config = unpack(task.config, local_blobs(blobs, task.config), verify=False)
            if attempt.worker == self.me:  # verdicts.judge reads neither payload nor result of its own
                return verdicts.judge(task.task_type, config, {}, None, attempt.result_hash or "", secret, standing,
                                      own=True)
            needed = {h: data for h in payload_blobs(chunk.payload) if (data := blobs.local(h)) is not None}
            payload = unpack(chunk.payload, needed, verify=False)
            judged = verdicts.judge(task.task_type, config, payload, self._value(attempt), attempt.result_hash or "",
                                    secret, standing, needed)
        except (LedgerNetError, KeyError, TypeError, ValueError, IndexError) as exc:
            judged = Judgement(CHECK, False, {"secret": secret.hex(), "mode": str(task.verification.get("mode")),
                                              "decision": {"action": CHECK, "rate_ppm": 1_000_000,
                                                           "streak": standing.streak, "lies": standing.lies},
                                              "check": {"method": "read", "passed": False,
                                                        "reason": f"the result cannot be checked: {exc}"[:200]}})
        return judged

    def _value(self, attempt: Attempt) -> Any:
        if attempt.result is not None:
            wire, found = attempt.result, local_blobs(self.engine.blobs, attempt.result)
        else:
            ok, wire, found = self.engine.blobs.local_wire(attempt.result_hash or "")
            if not ok:
                raise TaskError("the result is not stored here")
        return unpack(wire, found, verify=False)

    def _comparison(self, task: OwnedTask) -> dict[str, Any]:
        """The task's comparison spec, from its config (cached: a task's config never changes)."""
        spec = self._specs.get(task.task_id)
        if spec is None:
            try:
                config = unpack(task.config, local_blobs(self.engine.blobs, task.config), verify=False)
                spec = compare.comparison_spec(task.task_type, config)
            except (LedgerNetError, KeyError, TypeError, ValueError):
                spec = {"kind": "exact"}
            if len(self._specs) > 10_000:
                self._specs.clear()
            self._specs[task.task_id] = spec
        return spec
