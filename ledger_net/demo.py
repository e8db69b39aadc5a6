"""The main job in one command: a small network of ledgers doing real, signed work,
then an audit of the books.

An operator node (an issuer) and a few worker nodes each keep their own SQLite
ledger in the data directory and replicate by exchanging signed events. The
operator pays workers, submits range-sum tasks with escrow, workers compute their
chunks for real and report signed results, the operator checks each result by
recomputing a sample, pays from escrow, rates the workers and completes the task
with the aggregated answer. Finally every ledger is verified from scratch, the
books are audited, and all nodes must agree on one state hash.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import audit
from .compute import aggregate, pack, plan_chunks, run_chunk
from .core.founding import found_network
from .core.money import to_credits
from .ledger.chain import Ledger
from .ledger.datadir import DataDir
from .ledger.encoding import canonical_bytes
from .ledger.events import Event
from .ledger.identity import Identity
from .ledger.store import StoredEvent
from .projections.runner import ProjectionRunner

UNIT = 10**6


@dataclass
class Peer:
    name: str
    identity: Identity
    ledger: Ledger
    runner: ProjectionRunner

    @property
    def id(self) -> str:
        return self.identity.node_id


def _open_peer(data_dir: Path, name: str) -> Peer:
    home = data_dir / name
    identity = Identity.load_or_create(home)
    ledger = Ledger.open(DataDir(home).database_url(), identity)
    return Peer(name, identity, ledger, ProjectionRunner(ledger))


def _sync(peers: list[Peer]) -> None:
    """In-process anti-entropy by heads, as the network does: a peer sends another only the part
    of each chain the other lacks (the seqs after the other's head), in its own log order, which
    is causal. The cost of a round follows what is new, not the size of the log."""
    for target in peers:
        theirs = target.ledger.store.heads()
        for source in peers:
            if source is target:
                continue
            rows: list[StoredEvent] = []
            for author, (seq, _) in source.ledger.store.heads().items():
                have = theirs.get(author, (0, ""))[0]
                if seq > have:
                    rows.extend(source.ledger.store.chain_segment(author, have + 1, limit=seq - have))
            if rows:
                rows.sort(key=lambda r: r.offset)
                target.ledger.ingest([Event.from_wire(r.raw, r.sig) for r in rows])
                theirs = target.ledger.store.heads()


def _receive_all(peer: Peer) -> None:
    items = [("credit.received", {"source": h}, (h,)) for h, _ in peer.ledger.state.open_credits_to(peer.id)]
    if items:
        peer.ledger.append_batch(items)


def run_demo(data_dir: str | Path, workers: int = 3, tasks: int = 3, say: Callable[[str], None] = print,
             seed: int | None = None) -> dict[str, Any]:
    """Run the main job; returns the operator's audit (with `ok`)."""
    rng = random.Random(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    operator = _open_peer(data_dir, "operator")
    crew = [_open_peer(data_dir, f"worker-{i + 1}") for i in range(workers)]
    peers = [operator, *crew]
    if operator.ledger.net is None:
        found_network(operator.ledger, "ledger-net demo", 10_000, reason="treasury")
        operator.ledger.append("node.joined", {"name": "operator", "node_type": "seed"})
        say(f"new network {(operator.ledger.net or '')[:16]}… created by operator {operator.id[:16]}…")
    else:
        say(f"reopened network {operator.ledger.net[:16]}… ({operator.ledger.store.count()} events)")
    _sync(peers)
    for peer in crew:
        if peer.ledger.head()[0] == 0:
            peer.ledger.append("node.joined", {"name": peer.name, "node_type": "public",
                                               "capabilities": {"cpu_milli": 1000, "max_concurrent_tasks": 4}})
    _sync(peers)
    operator.ledger.append_batch([("credit.transfer", {"to": p.id, "amount": 25 * UNIT}, ()) for p in crew])
    _sync(peers)
    for peer in crew:
        _receive_all(peer)
    _sync(peers)

    for _ in range(tasks):
        end = rng.randint(10_000, 5_000_000)
        task_id = f"task-{hashlib.sha256(f'{operator.id}{time.time_ns()}{rng.random()}'.encode()).hexdigest()[:24]}"
        config = {"operation": "sum", "start": 1, "end": end}
        payloads = plan_chunks("range_reduce", config, chunk_size=-(-end // (2 * workers)))
        price = 2 * UNIT
        submitted = operator.ledger.append("task.submitted", {
            "task_id": task_id, "task_type": "range_reduce", "escrow": price * len(payloads), "max_price": price,
            "chunks": len(payloads), "spec": {"config": config}, "priority": 1})
        assignments = []
        for index, payload in enumerate(payloads):
            worker = crew[index % workers]
            ev = operator.ledger.append("task.assigned", {"task_id": task_id, "chunk": index, "worker": worker.id,
                                                         "price": price}, (submitted.hash,))
            assignments.append((index, worker, payload, ev))
        _sync(peers)
        results: dict[int, Any] = {}
        for index, worker, payload, ev in assignments:
            value = run_chunk("range_reduce", payload)
            wire, _ = pack(value)
            worker.ledger.append("task.chunk_result", {
                "task_id": task_id, "chunk": index, "ok": True,
                "result_hash": hashlib.sha256(canonical_bytes(wire)).hexdigest(), "result": wire}, (ev.hash,))
            results[index] = value
        _sync(peers)
        # The owner re-runs one chunk per task at random: a cheap spot check of honesty.
        spot = rng.randrange(len(payloads))
        checked = run_chunk("range_reduce", payloads[spot]) == results[spot]
        for index, worker, _, _ in assignments:
            operator.ledger.append("task.chunk_accepted", {"task_id": task_id, "chunk": index, "worker": worker.id,
                                                           "payment": price})
        for worker in {w.id: w for _, w, _, _ in assignments}.values():
            operator.ledger.append("reputation.feedback", {"subject": worker.id, "task_id": task_id,
                                                           "positive": checked, "quality_ppm": 1_000_000,
                                                           "weight_ppm": 1_000_000})
        answer = aggregate("range_reduce", config, [results[i] for i in range(len(payloads))])
        wire_answer, _ = pack(answer)
        operator.ledger.append("task.completed", {"task_id": task_id, "refund": 0, "result": wire_answer})
        expected = end * (end + 1) // 2
        say(f"task {task_id}: sum 1..{end} = {answer} in {len(payloads)} chunks "
            f"({'correct' if answer == expected else 'WRONG'}; spot check {'passed' if checked else 'FAILED'})")
        _sync(peers)
        for peer in crew:
            _receive_all(peer)
        _sync(peers)

    for peer in peers:
        peer.runner.flush()
    audit_started = time.perf_counter()
    report = audit(operator.ledger, operator.runner)
    report["audit_seconds"] = round(time.perf_counter() - audit_started, 3)
    hashes = {p.name: p.runner.state_hash() for p in peers}
    rebuilt = operator.runner.state_hash()
    operator.runner.rebuild()
    report["rebuild_matches"] = operator.runner.state_hash() == rebuilt
    report["peers_agree"] = len(set(hashes.values())) == 1
    report["ok"] = report["ok"] and report["rebuild_matches"] and report["peers_agree"]
    report["seconds"] = round(time.perf_counter() - started, 3)
    _print_audit(report, operator, say)
    for peer in peers:
        peer.ledger.close()
    return report


def _print_audit(report: dict[str, Any], operator: Peer, say: Callable[[str], None]) -> None:
    d = report["decimals"]
    s = report["supply"]
    say("")
    say("=== audit ===")
    say(f"events verified from scratch: {report['events']} (effective {report['effective']}, "
        f"invalid {report['invalid_events']}, pending {report['pending_events']})")
    say(f"supply: minted {to_credits(s['minted'], d)} = balances {to_credits(s['balances'], d)} + escrow "
        f"{to_credits(s['escrow'], d)} + in transit {to_credits(s['in_transit'], d)} + vouchers "
        f"{to_credits(s['vouchers'], d)} + burnt {to_credits(s['burnt'], d)} -> "
        f"{'conserved' if report['conserved'] else 'NOT CONSERVED'}")
    say(f"forks: {len(report['forks'])}")
    for acct in sorted(report["accounts"], key=lambda a: (a["name"] or "", a["account"])):  # by name: stable
        say(f"  {acct['name'] or acct['account'][:16]:>10}  balance {to_credits(acct['balance'], d):>10.2f}  "
            f"earned {to_credits(acct['earned'], d):>7.2f}  spent {to_credits(acct['spent'], d):>7.2f}  "
            f"reputation {operator.runner.reputation.score(acct['account']) / 1e6:.3f}")
    say(f"state hash {report['state_hash'][:16]}…; all peers agree: {report['peers_agree']}; "
        f"rebuild equals incremental: {report['rebuild_matches']}")
    say(f"violations: {len(report['violations'])}  ->  {'AUDIT OK' if report['ok'] else 'AUDIT FAILED'} "
        f"(audit {report['audit_seconds']} s; whole run {report['seconds']} s)")
