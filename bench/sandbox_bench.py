"""Round-trip throughput of a trivial job: warm sandboxed pool vs fresh sandboxed process vs
concurrent.futures.ProcessPoolExecutor (unsandboxed), measured in one run.

    python bench/sandbox_bench.py [--jobs 3000] [--fresh 40] [--workers 2]

Why: the task engine must run ~500 tiny built-in operations per second; this shows which
launch strategy can.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ledger_net.sandbox.execution import CodeBundle, ProcessSandboxExecutor, SandboxLimits  # noqa: E402
from ledger_net.sandbox.warm_pool import WarmWorkerPool  # noqa: E402


def echo(payload: bytes) -> bytes:
    """The trivial job: return the payload."""
    return payload


async def bench_warm(jobs: int, workers: int) -> tuple[float, float]:
    async with WarmWorkerPool({"echo": "sandbox_bench:echo"}, size=workers) as pool:
        await pool.run("echo", b"warm-up")
        t0 = time.perf_counter()
        for _ in range(200):
            await pool.run("echo", b"x" * 64)
        sequential = 200 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(pool.run("echo", b"x" * 64) for _ in range(jobs)))
        concurrent = jobs / (time.perf_counter() - t0)
    return sequential, concurrent


async def bench_fresh(runs: int) -> float:
    ex = ProcessSandboxExecutor(SandboxLimits())
    bundle = CodeBundle("echo.py", "import sys; sys.stdout.write(sys.stdin.read())", stdin="x" * 64)
    t0 = time.perf_counter()
    for _ in range(runs):
        result = await ex.execute(None, bundle)
        assert result.success, result
    return runs / (time.perf_counter() - t0)


def bench_ppe(jobs: int, workers: int) -> float:
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as ppe:
        list(ppe.map(echo, [b"warm-up"] * workers))
        t0 = time.perf_counter()
        futures = [ppe.submit(echo, b"x" * 64) for _ in range(jobs)]
        for f in futures:
            f.result()
        return jobs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--fresh", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    seq, conc = asyncio.run(bench_warm(args.jobs, args.workers))
    fresh = asyncio.run(bench_fresh(args.fresh))
    ppe = bench_ppe(args.jobs, args.workers)
    print(f"warm sandboxed pool ({args.workers} workers), sequential awaits : {seq:9.0f} jobs/s")
    print(f"warm sandboxed pool ({args.workers} workers), {args.jobs} concurrent  : {conc:9.0f} jobs/s")
    print(f"fresh sandboxed process per job (process_isolation)   : {fresh:9.1f} jobs/s "
          f"({1000 / fresh:.1f} ms each)")
    print(f"ProcessPoolExecutor ({args.workers} workers, no sandbox)        : {ppe:9.0f} jobs/s")


if __name__ == "__main__":
    main()
