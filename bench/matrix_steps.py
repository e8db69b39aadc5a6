"""Three steps of the matrix path, each timed the way it ran before issue 13's latency round and the
way it runs now, alternated in one run (CPU and wall time of the step itself: on a loaded machine
the end-to-end ratios of ``task_bench.py`` swing more than any of these).

* ``leaves``: a peer's ``GET /blobs/{name}/pieces`` of an n x n float64 operand: the leaves hashed
  from the whole blob (before) against the store's checked sidecar (``Store.blob_leaves``).
* ``fetch``: one blob fetch from a peer on loopback (a subprocess serving a file): a new
  ``PeerClient`` and connection per fetch (before) against one kept-alive session (the node's
  blob-fetch session); the fetching process's CPU, for a leaves-sized and a result-sized answer.
* ``worker``: a warm worker's second chunk of the same multiply: its operand files mapped afresh
  and all of B checked finite (before) against the kept maps and finiteness notes.

Usage: ``python bench/matrix_steps.py [--n 2048] [--rounds 7] [--json] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # a sandboxed worker's one BLAS thread
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402 -- after the BLAS thread settings

from ledger_net.blob_names import name_of, pieces  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.compute import matrices  # noqa: E402
from ledger_net.compute.blobs import ArrayBlob, decode_array  # noqa: E402
from ledger_net.execution import chunk_job  # noqa: E402
from ledger_net.execution.framing import encode_frame  # noqa: E402
from ledger_net.ledger.store import Store  # noqa: E402
from ledger_net.network.client import PeerClient, guarded_session  # noqa: E402

Sample = tuple[float, float]  # (CPU ms, wall ms)

SERVER = """
import sys
from aiohttp import web
async def blob(request):
    return web.FileResponse(sys.argv[1])
app = web.Application()
app.add_routes([web.get("/api/v1/blobs/{name}", blob)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None)
"""


def timed(step: Callable[[], Any], clock: Callable[[], float] = time.thread_time) -> Sample:
    cpu, wall = clock(), time.perf_counter()
    step()
    return (clock() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3


def summary(samples: list[Sample]) -> dict[str, float]:
    cpu, wall = [s[0] for s in samples], [s[1] for s in samples]
    return {"cpu_ms_min": round(min(cpu), 3), "cpu_ms_median": round(statistics.median(cpu), 3),
            "wall_ms_min": round(min(wall), 3), "wall_ms_median": round(statistics.median(wall), 3)}


def alternate(rounds: int, before: Callable[[], Sample], after: Callable[[], Sample]) -> dict[str, Any]:
    got: dict[str, list[Sample]] = {"before": [], "after": []}
    for r in range(rounds):
        for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
            got[which].append((before if which == "before" else after)())
    return {k: summary(v) for k, v in got.items()}


def leaves_step(tmp: Path, n: int, rounds: int) -> dict[str, Any]:
    store = Store.open(f"sqlite:///{tmp}/steps.db")
    store.blob_dir = tmp / "blobs"
    name = store.put_new_blob(ArrayBlob(np.random.default_rng(1).standard_normal((n, n))))
    assert store.blob_leaves(name) == pieces(name, store.blob_view(name))
    return alternate(rounds, lambda: timed(lambda: pieces(name, store.blob_view(name))),
                     lambda: timed(lambda: store.blob_leaves(name)))


async def _fetch_step(tmp: Path, size: int, rounds: int) -> dict[str, Any]:
    path = tmp / f"served-{size}"
    path.write_bytes(os.urandom(size))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(path), str(port)])
    url, blob = f"http://127.0.0.1:{port}", "0" * 64
    try:
        for _ in range(100):  # until the server answers
            try:
                async with PeerClient(url) as probe:
                    await probe.blob_into(blob, lambda b: None)
                break
            except Exception:
                await asyncio.sleep(0.05)
        shared = guarded_session(32, limit_per_host=4)
        got: dict[str, list[Sample]] = {"before": [], "after": []}
        for r in range(rounds):
            for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
                cpu, wall = time.process_time(), time.perf_counter()
                client = PeerClient(url, timeout=30) if which == "before" else PeerClient(url, shared, timeout=30)
                async with client:
                    await client.blob_into(blob, lambda b: None)
                got[which].append(((time.process_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3))
        await shared.close()
        return {k: summary(v) for k, v in got.items()}
    finally:
        server.terminate()
        server.wait()


def _forget_maps() -> None:
    for key in list(chunk_job._kept):
        matrices.FINITE.drop(chunk_job._kept.pop(key).obj)


def worker_step(tmp: Path, n: int, rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    files = {}
    for label in ("a", "b"):
        data = bytes(ArrayBlob(rng.standard_normal((n, n))))
        name = name_of(data)
        (tmp / label).write_bytes(data)
        files[label] = (name, str(tmp / label))
    a, b = files["a"], files["b"]
    rows = max(1, n // 4)
    frame = encode_frame({"task_type": "matrix_ops", "payload": {
        "operation": "multiply", "a": {"$array": [a[0], 0, rows]}, "b": {"$array": b[0]}, "row_offset": 0},
        "files": {a[0]: a[1], b[0]: b[1]}}, {})
    cwd = os.getcwd()
    os.chdir(tmp)  # a big result is written to the worker's dir
    try:
        def second_chunk(keep: bool) -> Sample:
            _forget_maps()
            chunk_job.run_chunk_job(frame)  # the task's first chunk on this worker
            if not keep:
                _forget_maps()

            def step() -> None:
                blobs = chunk_job._map_files({a[0]: a[1], b[0]: b[1]})
                matrices._check_array(decode_array(blobs[b[0]], copy=False), "matrix_b", 2)
            return timed(step)
        return alternate(rounds, lambda: second_chunk(False), lambda: second_chunk(True))
    finally:
        os.chdir(cwd)
        _forget_maps()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="operand size (n x n float64)")
    parser.add_argument("--rounds", type=int, default=7, help="alternations of before and after")
    parser.add_argument("--quick", action="store_true", help="smoke run: n 512, 1 round")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    args = parser.parse_args(argv)
    n, rounds = (512, 1) if args.quick else (args.n, args.rounds)  # 2 MiB: a b3t name
    with tempfile.TemporaryDirectory(prefix="matrix-steps-") as d:
        tmp = Path(d)
        doc: dict[str, Any] = {"n": n, "rounds": rounds, "load": os.getloadavg()[0]}
        doc["leaves"] = leaves_step(tmp, n, rounds)
        doc["fetch_1KiB"] = asyncio.run(_fetch_step(tmp, 1024, 2 * rounds + 1))
        doc["fetch_8MiB"] = asyncio.run(_fetch_step(tmp, 8 << 20, 2 * rounds + 1))
        doc["worker"] = worker_step(tmp, n, rounds)
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"matrix path steps, {n}x{n} float64, {rounds} alternations, load {doc['load']:.2f}")
    for step in ("leaves", "fetch_1KiB", "fetch_8MiB", "worker"):
        for which in ("before", "after"):
            s = doc[step][which]
            print(f"  {step:<11} {which:<6}  CPU ms min/median {s['cpu_ms_min']:8.2f} / {s['cpu_ms_median']:8.2f}"
                  f"   wall ms min/median {s['wall_ms_min']:8.2f} / {s['wall_ms_median']:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
