"""Task benchmark: ledger_net end to end beside dask.distributed and a process pool.

    pip install -e .[bench]               # dask[distributed]; py-spy for the profiles in docs/performance.md
    python bench/task_bench.py            # full run (500 tiny tasks, 2048x2048 matrices)
    python bench/task_bench.py --quick    # smoke run (small sizes)

(a) Tiny-task throughput on one node: every task is submitted (escrow locked),
    quoted, assigned, executed in a sandboxed warm worker, reported, paid and
    completed — all signed events — measured from the first submit to the last
    completion. Beside: dask.distributed LocalCluster (processes=True, 2 workers,
    1 thread each) and concurrent.futures.ProcessPoolExecutor(2) on the same tiny
    function (the sum of a range). Goal (issue 13): >= 1.0 x the dask rate.
(b) matrix_ops multiply of two N x N float64 matrices (N = 2048) on one node, split into
    more chunks than workers (`--chunks`, default 4 for 2 workers), beside plain numpy in
    one process (goal: within 1.3 x numpy's time); then two nodes, each a subprocess pinned
    to its own core (os.sched_setaffinity) with one sandboxed worker and one BLAS thread,
    beside one such pinned node (goal: >= 1.7 x faster; 2 x is the limit). Also reports how
    the operands travel: the blobs named in the events versus the JSON size of the events.

`--pinned` runs only the pinned one-node and two-node rows (`--compare-whole` adds two nodes
whose second fetches every operand whole, without range fetches). Each prints its best run's chunk
timeline: assigned, the worker's fetch / slot wait / run / store times, reported, the owner's
fetch of a remote result (seen, held), accepted.
`--profile` prints a cProfile of the one-node matrix run (the node's event loop only:
workers and hashing threads need `py-spy record --subprocesses --threads`).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger_net.core.task import Task  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.main import ComputeNetwork  # noqa: E402 -- after sys.path gets this checkout

ONE_THREAD = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
TINY_END = 1000
# What a worker's report says of a chunk's time (its usage, ms): fetching the inputs, waiting for
# a slot, (wall_ms: running in the sandbox), storing the result (execution/running.py).
STAGES = ("fetch_ms", "wait_ms", "store_ms")


def tiny(start: int, end: int) -> int:
    """The tiny task for every system: the sum of an inclusive integer range."""
    return sum(range(start, end + 1))


async def wait_all(net: ComputeNetwork, ids: list[str], timeout: float) -> dict[str, int]:
    """Poll the tasks projection until every task is finished; counts by final status."""
    deadline = time.monotonic() + timeout
    tasks = net.runner.tasks.tasks
    open_ids = set(ids)
    while open_ids:
        open_ids = {i for i in open_ids if tasks[i]["status"] not in ("completed", "failed", "cancelled")}
        if not open_ids:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(open_ids)} of {len(ids)} tasks still open after {timeout}s")
        await asyncio.sleep(0.005)
    counts: dict[str, int] = {}
    for i in ids:
        counts[tasks[i]["status"]] = counts.get(tasks[i]["status"], 0) + 1
    return counts


# ------------------------------------------------------------------ (a) tiny tasks
async def ledger_tiny(n: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        net = ComputeNetwork(port=0, data_dir=Path(tmp) / "node", initial_credits=1_000_000.0, workers=workers,
                             quote_window=0.0)
        await net.start()
        try:
            warm = await net.submit_task(Task.create_range_reduce(net.ledger.node_id, 1, TINY_END, "sum", {},
                                                                  {"max_price": 0.01}).to_dict())
            await wait_all(net, [warm], 60)
            events_before = net.ledger.store.last_offset()
            cpu0, t0 = time.process_time(), time.perf_counter()
            ids = []
            for i in range(n):
                task = Task.create_range_reduce(net.ledger.node_id, 1, TINY_END + i, "sum", {}, {"max_price": 0.01})
                ids.append(await net.submit_task(task.to_dict()))
            counts = await wait_all(net, ids, 600)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            assert counts == {"completed": n}, counts
            for i in (0, n - 1):
                assert await net.get_task_result(ids[i]) == tiny(1, TINY_END + i)
            paid = sum(net.runner.tasks.tasks[i]["paid"] for i in ids)
            events = net.ledger.store.last_offset() - events_before
        finally:
            await net.stop()
    return {"rate": n / elapsed, "seconds": elapsed, "cpu_seconds": cpu, "events": events,
            "events_per_task": events / n, "paid_units": paid}


def dask_tiny(n: int, workers: int) -> dict[str, Any]:
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(tiny, [1] * 10, [TINY_END + 10_000 + i for i in range(10)]))  # warm up
        t0 = time.perf_counter()
        futures = client.map(tiny, [1] * n, [TINY_END + i for i in range(n)], pure=False)
        results = client.gather(futures)
        elapsed = time.perf_counter() - t0
    assert results[0] == tiny(1, TINY_END)
    return {"rate": n / elapsed, "seconds": elapsed}


def pool_tiny(n: int, workers: int) -> dict[str, Any]:
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        list(pool.map(tiny, [1] * 10, [TINY_END] * 10))  # warm up
        t0 = time.perf_counter()
        futures = [pool.submit(tiny, 1, TINY_END + i) for i in range(n)]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - t0
    assert results[0] == tiny(1, TINY_END)
    return {"rate": n / elapsed, "seconds": elapsed}


# ------------------------------------------------------------------ (b) matrices
def matrices(n: int, seed: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, n)), rng.random((n, n))


def numpy_time(n: int, repeat: int = 3) -> float:
    a, b = matrices(n)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return best


async def ledger_matrix(net: ComputeNetwork, n: int, chunks: int, profile: bool = False,
                        seed: int = 2048) -> dict[str, Any]:
    """One matrix_ops multiply on `net`, timed from building the task to holding the result.
    Each seed gives new operands: their blobs are hashed and written anew, never found stored."""
    a, b = matrices(n, seed)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    offset = net.ledger.store.last_offset()
    t0, cpu0 = time.perf_counter(), os.times()
    task = Task.create_matrix_ops(net.ledger.node_id, a, b, "multiply", {"timeout_seconds": 600},
                                  {"max_price": 100.0 * max(1.0, (n / 2048) ** 3),  # the work grows as n³
                                   "chunk_size": -(-n // chunks)})
    task_id = await net.submit_task(task.to_dict())
    t_submitted = time.perf_counter()
    counts = await wait_all(net, [task_id], 1800)
    t_done = time.perf_counter()
    result = await net.get_task_result(task_id)
    t_result, cpu1 = time.perf_counter(), os.times()
    if profiler:
        profiler.disable()
    assert counts == {"completed": 1}, (counts, net.runner.tasks.tasks[task_id]["reason"])
    # Numpy's answer only now, and a pause after it: OpenBLAS's idle threads spin for up to
    # ~0.2 s after a product, and they took CPU from the submission and the workers being timed
    # when the product was taken just before t0 (best of 5 alternations 0.282 -> 0.250 s).
    assert np.allclose(np.asarray(result), a @ b)
    await asyncio.sleep(0.3)
    event_bytes, blob_refs, by_node = 0, 0, {}
    stamps: dict[str, int] = {}  # the author's clock (ms) of each event, for the chunks' timeline
    timeline: list[dict[str, Any]] = []
    assigned_at: set[str] = set()
    accepted: dict[int, int] = {}
    for row in net.ledger.store.select_events(after=offset):
        event_bytes += len(row.raw)
        raw = row.raw if isinstance(row.raw, str) else bytes(row.raw).decode()
        blob_refs += raw.count('"$array"') + raw.count('"payload_hash"') + raw.count('"result_hash"')
        event = json.loads(raw)
        stamps[row.hash] = event["ts"]
        if row.type == "task.submitted":
            stamps["submitted"] = event["ts"]
        if row.type == "task.assigned":
            assigned_at.add(row.hash)
        if row.type == "task.chunk_result":
            who = "this node" if row.author == net.ledger.node_id else row.author[:8]
            by_node[who] = by_node.get(who, 0) + 1
            body = event["body"]
            usage = body.get("usage") or {}
            assigned = max((stamps[d] for d in event.get("deps", []) if d in assigned_at), default=event["ts"])
            timeline.append({"chunk": body["chunk"], "node": who, "assigned_ms": assigned - stamps["submitted"],
                             "reported_ms": event["ts"] - stamps["submitted"], "ran_ms": usage.get("wall_ms"),
                             **{k: usage.get(k) for k in STAGES}})
        if row.type == "task.chunk_accepted":
            accepted[event["body"]["chunk"]] = event["ts"] - stamps["submitted"]
    trips = {chunk: (seen, held) for task, chunk, seen, held in net.engine.result_trips if task == task_id}
    for chunk in timeline:
        chunk["accepted_ms"] = accepted.get(chunk["chunk"])
        seen, held = trips.get(chunk["chunk"], (None, None))  # the owner fetching a remote result
        chunk["seen_ms"] = seen - stamps["submitted"] if seen is not None else None
        chunk["held_ms"] = held - stamps["submitted"] if held is not None else None
    status = await net.get_task_status(task_id)
    out = {"seconds": t_result - t0, "submit_seconds": t_submitted - t0, "run_seconds": t_done - t_submitted,
           "result_seconds": t_result - t_done, "event_bytes": event_bytes,
           # this node's process (its loop and threads, not its sandboxed workers): user, system
           "node_cpu": (cpu1.user - cpu0.user, cpu1.system - cpu0.system), "blob_refs": blob_refs,
           "operand_bytes": a.nbytes + b.nbytes, "workers": len(status["workers"]), "chunks_by_node": by_node,
           "timeline": sorted(timeline, key=lambda c: (c["node"], c["chunk"]))}
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(22)
        out["profile"] = text.getvalue()
    return out


async def one_node_matrix(n: int, chunks: int, workers: int, profile: bool, repeat: int = 3) -> dict[str, Any]:
    """Best of `repeat` multiplies with fresh operands on one warmed-up node (numpy's figure is
    a best of 3 too); the first, cold run is reported beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        net = ComputeNetwork(port=0, data_dir=Path(tmp) / "node", initial_credits=1000.0, workers=workers,
                             quote_window=0.0)
        await net.start()
        try:
            cold = await ledger_matrix(net, n, chunks, seed=1)
            runs = [await ledger_matrix(net, n, chunks, profile and i == 0, seed=10 + i) for i in range(repeat)]
        finally:
            await net.stop()
    best = min(runs, key=lambda r: r["seconds"])
    best["cold_seconds"] = cold["seconds"]
    best["all_seconds"] = [r["seconds"] for r in runs]
    if profile:
        best["profile"] = runs[0]["profile"]
    return best


def matrix_parts(n: int, chunks: int, repeat: int = 3) -> list[tuple[str, float, float]]:
    """CPU seconds (process time, best of `repeat`) of each piece of work a one-node multiply adds
    to the BLAS product, per whole task, measured in this run beside the product's own CPU time
    on one thread. CPU time, unlike wall time, does not swing with the other jobs on a shared
    machine; (name, seconds, times per task) rows."""
    import hashlib
    import mmap

    from ledger_net.blob_names import name_of
    from ledger_net.compute.checks import freivalds
    from ledger_net.ledger.store.blobs import BlobStorage

    def cpu(fn: Any) -> float:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        return best

    a, b = matrices(n)
    rows = -(-n // chunks)
    block = np.ascontiguousarray(a[:rows])
    c = block @ b
    time.sleep(0.3)  # OpenBLAS's idle threads spin after a product: their CPU is not the pieces'
    operand = memoryview(a).cast("B")
    result = memoryview(c).cast("B")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob"

        def write(view: memoryview) -> None:
            # A new file each time, written as the blob store writes one (reserved, then filled):
            # rewriting the same file would also count freeing the old one's blocks.
            path.unlink(missing_ok=True)
            BlobStorage._write_parts(path, view)

        def populate() -> None:
            with open(path, "rb") as f:
                mapped = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                                   prot=mmap.PROT_READ)
                mapped.close()

        write(operand)
        parts = [
            ("name one operand (A or B): b3t, BLAKE3 of its 1 MiB pieces", cpu(lambda: name_of(operand)), 2),
            ("write one operand to its blob file", cpu(lambda: write(operand)), 2),
            ("map a 32 MiB operand with MAP_POPULATE (B per chunk)", cpu(populate), chunks),
            ("name one chunk's result: b3t", cpu(lambda: name_of(result)), chunks),
            ("write one chunk's result file", cpu(lambda: write(result)), chunks),
            # The owner checks another worker's results only: one node's are its own, trusted (issue 13).
            ("Freivalds check of one chunk (others' results; one node: none)",
             cpu(lambda: freivalds(block, b, c, b"seed" * 8)), 0),
            ("join the chunks' results into the answer", cpu(lambda: np.concatenate([c] * chunks)), 1),
            # What the two names above cost when blobs were named by SHA-256 (old names; 2 + chunks then).
            ("for comparison: sha256 of one operand (old names)", cpu(lambda: hashlib.sha256(operand).digest()), 0),
            ("for comparison: sha256 of one chunk's result (old names)",
             cpu(lambda: hashlib.sha256(result).digest()), 0),
        ]
        # The product last: after it OpenBLAS's idle threads spin and would be counted in the pieces.
        parts.insert(0, ("BLAS product A @ B (the work itself; CPU of all its threads)", cpu(lambda: a @ b), 1))
    return parts


async def serve_node(args: argparse.Namespace) -> None:
    """A node in its own process (`--serve`): the founder runs the job once `--peers` joined.
    `--pin CPU` holds the process (and so its sandboxed worker, a child) to that one core."""
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    seeds = [args.seed] if args.seed else []
    net = ComputeNetwork(port=0, data_dir=args.data_dir, seed_nodes=seeds, initial_credits=1000.0, workers=1,
                         sync_interval=0.1, quote_window=2.0)  # waited only until every node bid
    await net.start()
    if args.whole_blobs and net.engine is not None and net.engine.rows is not None:
        net.engine.rows.fetch = None  # every operand fetched whole, as before range fetches
    try:
        print(json.dumps({"url": net.server.url}), flush=True)
        if args.seed:
            await asyncio.to_thread(sys.stdin.readline)  # serve until the parent closes our stdin
            return
        deadline = time.monotonic() + 60
        while len(net.runner.nodes.nodes) < args.peers:
            if time.monotonic() > deadline:
                raise TimeoutError("peers did not join")
            await asyncio.sleep(0.05)
        await ledger_matrix(net, 64, args.chunks, seed=1)  # warm up every node's sandboxed workers
        runs = [await ledger_matrix(net, args.n, args.chunks, seed=2 + i) for i in range(args.repeat)]
        result = min(runs, key=lambda r: r["seconds"])
        result["all_seconds"] = [r["seconds"] for r in runs]
        print(json.dumps(result), flush=True)
    finally:
        await net.stop()


def subprocess_matrix(n: int, nodes: int, chunks: int, repeat: int = 1, whole: bool = False) -> dict[str, Any]:
    """Multiplies (best of `repeat`, fresh operands each) on `nodes` node processes, each held to
    one BLAS thread, one sandboxed worker and its own core (node i on CPU i): on a 2-core machine
    that is the only fair comparison of two nodes with one, since unpinned both would share
    both cores with each other's workers."""
    env = dict(os.environ, **ONE_THREAD, PYTHONPATH=str(ROOT))
    me = [sys.executable, str(Path(__file__).resolve())]
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        founder = subprocess.Popen(me + ["--serve", "--data-dir", f"{tmp}/n0", "--peers", str(nodes), "--n", str(n),
                                         "--chunks", str(chunks), "--repeat", str(repeat), "--pin", str(cpus[0])],
                                   env=env, stdout=subprocess.PIPE, text=True)
        others = []
        try:
            url = json.loads(founder.stdout.readline())["url"]
            for i in range(1, nodes):
                p = subprocess.Popen(me + ["--serve", "--data-dir", f"{tmp}/n{i}", "--seed", url,
                                           "--pin", str(cpus[i % len(cpus)])] + (["--whole-blobs"] if whole else []),
                                     env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                others.append(p)
                json.loads(p.stdout.readline())
            line = founder.stdout.readline()
            if not line:
                raise RuntimeError(f"the founder node exited with {founder.wait()}")
            return json.loads(line)
        finally:
            for p in others:
                p.stdin.close()
            for p in others + [founder]:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def print_timeline(label: str, timeline: list[dict[str, Any]]) -> None:
    """Each chunk of a best run: when it was assigned (the owner's clock), what its worker spent
    fetching inputs, waiting for its slot, running and storing the result (the report's usage),
    when the report was signed (the worker's clock), when the owner saw a remote report and held
    its result (its fetch) and when it accepted it (after checking it). Nodes on one machine
    share one clock."""
    print(f"  {label} (best run), ms after task.submitted:")
    print(f"    {'chunk':>5} {'node':<10} {'assigned':>8} {'fetch':>6} {'wait':>5} {'ran':>5} {'store':>5} "
          f"{'reported':>8} {'seen':>6} {'held':>6} {'accepted':>8}")
    for c in timeline:
        cells = [c["assigned_ms"], *(c.get(k) for k in ("fetch_ms", "wait_ms", "ran_ms", "store_ms")),
                 c["reported_ms"], c.get("seen_ms"), c.get("held_ms"), c.get("accepted_ms")]
        text = ["-" if v is None else str(v) for v in cells]
        print(f"    {c['chunk']:>5} {c['node']:<10} {text[0]:>8} {text[1]:>6} {text[2]:>5} {text[3]:>5} {text[4]:>5} "
              f"{text[5]:>8} {text[6]:>6} {text[7]:>6} {text[8]:>8}")


def pinned_rows(n: int, chunks: int, repeat: int, compare_whole: bool = False) -> None:
    """One pinned node, then two, in this run; the speed-up and each best run's chunk timeline.
    ``compare_whole`` adds two nodes whose second fetches every operand whole (no range fetch)."""
    if len(os.sched_getaffinity(0)) < 2:
        print("  (two pinned nodes need two CPUs; skipped)")
        return
    single = subprocess_matrix(n, 1, chunks, repeat)
    whole = subprocess_matrix(n, 2, chunks, repeat, whole=True) if compare_whole else None
    double = subprocess_matrix(n, 2, chunks, repeat)
    speedup = single["seconds"] / double["seconds"]
    print(f"  one pinned node           {single['seconds']:8.3f} s  (1 core, 1 worker, 1 BLAS thread; best of "
          f"{', '.join(f'{x:.3f}' for x in single['all_seconds'])}; run {single['run_seconds']:.2f})")
    print(f"  two pinned nodes          {double['seconds']:8.3f} s  (a core each; best of "
          f"{', '.join(f'{x:.3f}' for x in double['all_seconds'])}; run {double['run_seconds']:.2f}, "
          f"chunks run by {double['chunks_by_node']})")
    for label, run in (("one pinned", single), ("two pinned", double)):
        user, system = run["node_cpu"]
        print(f"  {label}: the founder node's own process (not its worker) used {user * 1000:.0f} ms user + "
              f"{system * 1000:.0f} ms system CPU in its best run")
    verdict = "MET" if speedup >= 1.7 else "NOT MET"
    print(f"  speedup two / one pinned  {speedup:8.2f} x  goal >= 1.70 (2 is the limit)  {verdict}")
    if whole is not None:
        print(f"  two pinned, operands whole {whole['seconds']:8.3f} s  (the second node fetches all of A, no ranges; "
              f"best of {', '.join(f'{x:.3f}' for x in whole['all_seconds'])}; speed-up "
              f"{single['seconds'] / whole['seconds']:.2f} x)")
    runs = [("one pinned node", single), ("two pinned nodes", double)]
    for label, run in runs + ([("two pinned nodes, operands whole", whole)] if whole is not None else []):
        print_timeline(label, run["timeline"])


# ------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run with small sizes")
    parser.add_argument("--tasks", type=int, help="tiny tasks (default 500, quick 50)")
    parser.add_argument("--n", type=int, help="matrix size (default 2048, quick 256)")
    parser.add_argument("--chunks", type=int, default=4, help="row blocks of the multiply (more than workers)")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--skip-matrix", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the one-node matrix run")
    parser.add_argument("--pinned", action="store_true",
                        help="only the pinned rows: one node, then two, each chunk's timeline; then exit")
    parser.add_argument("--compare-whole", action="store_true",
                        help="with --pinned: also two nodes whose second fetches operands whole (no range fetch)")
    parser.add_argument("--whole-blobs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parts", action="store_true",
                        help="CPU cost of each piece of the matrix path beside the product's, then exit")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    parser.add_argument("--peers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--pin", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="trials of each multiply figure (best is printed)")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_node(args))
        return
    n_tasks = args.tasks or (50 if args.quick else 500)
    n = args.n or (256 if args.quick else 2048)
    if args.parts:
        parts = matrix_parts(n, args.chunks, args.repeat)
        product = parts[0][1]
        print(f"CPU seconds of the pieces of one {n}x{n} multiply in {args.chunks} chunks (best of {args.repeat}):")
        for name, seconds, times in parts:
            print(f"  {name:<64} {seconds * 1000:8.1f} ms x {times} = {seconds * times / product:6.1%} of the product")
        extra = sum(seconds * times for _, seconds, times in parts[1:])
        print(f"  {'every piece beyond the product, together':<64} {extra * 1000:8.1f} ms"
              f"       = {extra / product:6.1%} of the product")
        return
    workers = 2
    print(f"task_bench: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, numpy {np.__version__}")
    if args.pinned:
        print(f"\n(b) matrix_ops multiply, {n}x{n} float64, {args.chunks} chunks, pinned nodes only")
        pinned_rows(n, args.chunks, args.repeat, args.compare_whole)
        return

    if not args.skip_tiny:
        print(f"\n(a) {n_tasks} tiny tasks (sum of a range), {workers} workers")
        mine = asyncio.run(ledger_tiny(n_tasks, workers))
        pool = pool_tiny(n_tasks, workers)
        dask = dask_tiny(n_tasks, workers)
        print(f"  ledger_net one node       {mine['rate']:8.1f} tasks/s  ({mine['seconds']:.2f} s, "
              f"{mine['events_per_task']:.1f} signed events/task, node process CPU {mine['cpu_seconds']:.2f} s)")
        print(f"  dask LocalCluster         {dask['rate']:8.1f} tasks/s  ({dask['seconds']:.2f} s)")
        print(f"  ProcessPoolExecutor       {pool['rate']:8.1f} tasks/s  ({pool['seconds']:.2f} s)")
        ratio = mine["rate"] / dask["rate"]
        print(f"  ledger_net / dask         {ratio:8.2f}   goal >= 1.00  {'MET' if ratio >= 1.0 else 'NOT MET'}")
        print(f"  ledger_net / process pool {mine['rate'] / pool['rate']:8.2f}")

    if not args.skip_matrix:
        print(f"\n(b) matrix_ops multiply, {n}x{n} float64, {args.chunks} chunks")
        base = numpy_time(n)
        one = asyncio.run(one_node_matrix(n, args.chunks, workers, args.profile))
        ratio = one["seconds"] / base
        print(f"  numpy one process         {base:8.3f} s")
        print(f"  ledger_net one node       {one['seconds']:8.3f} s  (best of "
              f"{', '.join(f'{x:.3f}' for x in one['all_seconds'])}; submit {one['submit_seconds']:.2f}, run "
              f"{one['run_seconds']:.2f}, result {one['result_seconds']:.2f}; first run on the fresh node "
              f"{one['cold_seconds']:.3f})")
        print(f"  ledger_net / numpy        {ratio:8.2f} x  goal <= 1.30  {'MET' if ratio <= 1.3 else 'NOT MET'}")
        print(f"  operands {one['operand_bytes'] / 2**20:.0f} MiB; events of the task {one['event_bytes'] / 1024:.1f}"
              f" KiB with {one['blob_refs']} blob references (operands and results travel as blobs)")
        pinned_rows(n, args.chunks, args.repeat)
        if args.profile:
            print("\n  cProfile of the one-node run (cumulative):\n" + one["profile"])


if __name__ == "__main__":
    main()
