"""Hostile-peer benchmark (issue 10, item 8): for each attack, the replication latency of an
honest transfer between two honest nodes and the attacked node's peak RSS, beside the same
figures without the attack, measured on the same pair of nodes in the same run.

    python bench/hostile_bench.py                    # every attack, default sizes (~2 minutes)
    python bench/hostile_bench.py --quick            # smaller attacks, fewer transfers (~1-1.5 minutes)
    python bench/hostile_bench.py --attack csrf --attack orphans
    python bench/hostile_bench.py --json             # one JSON document on stdout (progress on stderr)

Each phase starts two honest nodes as real `ledger-net node` processes on 127.0.0.1: P
(founds the network) and Q (joins with `--seed P`). It measures `--transfers` honest
transfers without an attack (the phase's baseline), then starts the attacker — a separate
process (this file with `--attacker KIND`), so its CPU does not stall the measuring loop —
against P, measures the same transfers again while the attack runs, stops the attacker and
the nodes. A transfer's latency runs from just before `POST /api/v1/transfers` on P until
`GET /api/v1/events/{hash}` on Q answers 200 (polled every 10 ms). P's RSS is sampled with
psutil every 50 ms; the peak is the largest sample of the window (the baseline transfers, or
the attack from its first byte to its last).

Goal (issue 10): under every attack, median latency <= 2 x the baseline median and peak RSS
<= 2 x the baseline peak. The table marks each row `met` or `MISSED`; the exit status is 0
either way (a benchmark, not a test). `handled` says what the attack got: its refusals, and
whether the node refused it the way it should (`ok`) or not (`BREACH`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger_net.ledger import encoding  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.events import FORMAT_VERSION, MAX_EVENT_BYTES  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.identity import Identity  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.network.auth import TOKEN_HEADER, read_token  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.network.protocol import API  # noqa: E402 -- after sys.path gets this checkout

ATTACKS = ("big_events", "orphans", "tarpits", "csrf", "slow_readers", "conn_flood")
GOAL = 2.0
RSS_SAMPLE_S = 0.05
POLL_S = 0.01
MiB = 1 << 20
TOKEN_ENV = "HOSTILE_BENCH_TOKEN"  # P's API token, for the attacker's token-bearing CSRF variants


# ---------------------------------------------------------------------------- sizes

@dataclass
class Sizes:
    transfers: int = 8           # honest transfers per window (baseline and attacked)
    spacing: float = 0.4         # seconds between two honest transfers
    big_pushes: int = 600        # at most this many pushes of 8 signed ~60 KiB events from fresh keys
                                 # (1 push in 10 is one event over the limit instead)
    orphans: int = 10_000        # distinct orphan events (valid signatures, unknown prev), in pushes of 250,
    orphan_rounds: int = 5       # pushed again and again until the window ends, at most this many times
    tarpits: int = 24            # node.joined events announcing ports that accept and never answer
    csrf_requests: int = 40_000  # at most this many forged control requests (18 kinds in turn, 8 at a time)
    slow_readers: int = 400      # clients of /api/v1/feed that never read
    feed_mib: int = 4            # MiB of events in P's feed before the slow-reader phase
    connections: int = 1500      # idle sockets (P's cap is 1000)
    slow_window: float = 16.0    # the slow-reader attack lasts at least this long (P drops stalls after 10 s)
    tarpit_window: float = 8.0   # the tarpit attack lasts at least this long (P probes 8 URLs at a time, 3 s each)
    timeout: float = 30.0        # bound on any one wait (node start, a transfer, the attacker)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(transfers=4, spacing=0.3, big_pushes=200, orphans=3000, tarpits=12, csrf_requests=10_000,
                   slow_readers=150, feed_mib=2, connections=1200)


# ---------------------------------------------------------------------------- helpers

def forge(identity: Identity, *, net: str, seq: int, prev: str | None, type: str, body: Any) -> dict[str, str]:
    """A signed wire event, built without the ledger's validation (attackers sign what they like)."""
    envelope = {"v": FORMAT_VERSION, "net": net, "author": identity.node_id, "seq": seq, "prev": prev,
                "deps": [], "type": type, "body": body, "ts": int(time.time() * 1000)}
    raw = encoding.canonical_bytes(envelope)
    return {"raw": raw.decode("utf-8"), "sig": identity.sign(encoding.digest(raw)).hex()}


def wire_hash(item: dict[str, str]) -> str:
    return encoding.content_hash(item["raw"].encode("utf-8"))


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def progress(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


class NodeProc:
    """`ledger-net node` in a subprocess, its stderr in a log file."""

    def __init__(self, data_dir: Path, seeds: tuple[str, ...] = (), initial_credits: float | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        args = [sys.executable, "-m", "ledger_net.cli", "node", "--data-dir", str(data_dir), "--port", "0",
                "--log-level", "WARNING"]
        for seed in seeds:
            args += ["--seed", seed]
        if initial_credits is not None:
            args += ["--initial-credits", str(initial_credits)]
        self._log = open(self.log_path, "w")  # noqa: SIM115 (open while the node runs; closed in stop())
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._log,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        self.url = ""
        self.token = ""
        self.node_id = ""
        self.net = ""

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("ready "):
                    self.url = line.split(" ", 1)[1].strip()
                    self.token = read_token(self.data_dir) or ""
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.data_dir.name} exited ({self.proc.returncode}): {text[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"node {self.data_dir.name} not ready within {timeout:.0f} s")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def log_tail(self, lines: int = 5) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class RssSampler:
    """Peak RSS of one process, sampled every 50 ms on a thread between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
                self.samples += 1
            except psutil.Error:
                return
            self._stop.wait(RSS_SAMPLE_S)

    def start(self) -> RssSampler:
        self._cpu0, self._t0 = sum(self.process.cpu_times()[:2]), time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.cpu = (sum(self.process.cpu_times()[:2]) - self._cpu0) / max(1e-9, time.monotonic() - self._t0)
        except psutil.Error:
            self.cpu = float("nan")
        return self.peak


async def get_json(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(url, **kwargs) as resp:
        body = await resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, None


async def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Pair:
    """Two honest nodes: P (founder, the attacked one) and Q (joined through P)."""

    def __init__(self, root: Path, sizes: Sizes) -> None:
        self.root, self.sizes = root, sizes
        self.p: NodeProc | None = None
        self.q: NodeProc | None = None
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.p = NodeProc(self.root / "P", initial_credits=1_000_000)
        await loop.run_in_executor(None, self.p.wait_ready, self.sizes.timeout * 2)
        self.q = NodeProc(self.root / "Q", seeds=(self.p.url,))
        await loop.run_in_executor(None, self.q.wait_ready, self.sizes.timeout * 2)
        # a fresh connection per request, as the CLI makes: a node under a connection flood rightly
        # evicts idle keep-alive connections, and a POST on an evicted one would fail
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.sizes.timeout),
                                             connector=aiohttp.TCPConnector(force_close=True))
        for node in (self.p, self.q):
            _, info = await get_json(self.session, f"{node.url}{API}/info")
            node.node_id, node.net = info["node_id"], info["net"]

        p, q, session = self.p, self.q, self.session

        async def p_knows_q() -> bool:
            _, answer = await get_json(session, f"{p.url}{API}/peers")
            peers = answer.get("peers", answer) if isinstance(answer, dict) else answer
            return any(peer.get("node_id") == q.node_id and peer.get("status") == "connected"
                       for peer in peers or [])

        await wait_for(p_knows_q, self.sizes.timeout, "P to verify Q as a peer")
        await self.transfer_latency()  # warm-up: both paths exercised once, not counted

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, n.stop) for n in (self.p, self.q) if n is not None))

    async def transfer(self, to: str, amount: float = 1) -> str:
        assert self.session is not None and self.p is not None
        async with self.session.post(f"{self.p.url}{API}/transfers", json={"to": to, "amount": amount},
                                     headers={TOKEN_HEADER: self.p.token}) as resp:
            answer = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"honest transfer refused: {resp.status} {answer}")
            return answer["event"]

    async def transfer_latency(self) -> float:
        """Seconds from the POST of a transfer P → Q on P until Q serves the event."""
        assert self.session is not None and self.q is not None
        started = time.perf_counter()
        event = await self.transfer(self.q.node_id)
        deadline = started + self.sizes.timeout
        url = f"{self.q.url}{API}/events/{event}"
        while time.perf_counter() < deadline:
            try:
                async with self.session.get(url) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return time.perf_counter() - started
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(POLL_S)
        return float("inf")  # never arrived within the bound

    async def measure(self, spacing: float | None = None) -> list[float]:
        latencies = []
        for i in range(self.sizes.transfers):
            if i:
                await asyncio.sleep(self.sizes.spacing if spacing is None else spacing)
            latencies.append(await self.transfer_latency())
        return latencies

    async def converged(self) -> None:
        p, q, session = self.p, self.q, self.session
        assert session is not None and p is not None and q is not None

        async def same() -> bool:
            _, a = await get_json(session, f"{p.url}{API}/info")
            _, b = await get_json(session, f"{q.url}{API}/info")
            return a["events"] == b["events"]

        await wait_for(same, self.sizes.timeout * 2, "Q to catch up with P")


async def prefill_feed(pair: Pair, mib: int) -> int:
    """`mib` MiB of ~60 KiB events in P's feed, signed by a key P funded first (an established
    author, so never throttled): what a slow reader asks P for."""
    assert pair.session is not None and pair.p is not None
    author = Identity.generate()
    await pair.transfer(author.node_id, 1)
    count = max(1, (mib * MiB) // (60 << 10))
    events, prev = [], None
    for seq in range(1, count + 1):
        event = forge(author, net=pair.p.net, seq=seq, prev=prev, type="node.joined" if seq == 1 else "node.updated",
                      body={"name": f"fill-{seq}", "capabilities": {"pad": chr(97 + seq % 26) * (60 << 10)}})
        events.append(event)
        prev = wire_hash(event)
    for start in range(0, len(events), 30):
        async with pair.session.post(f"{pair.p.url}{API}/events", json={"events": events[start:start + 30]}) as resp:
            answer = await resp.json()
            if resp.status != 200 or answer.get("throttled"):
                raise RuntimeError(f"prefill refused: {resp.status} {answer}")
    await pair.converged()
    return count


# ---------------------------------------------------------------------------- the attacker process

class Attacker:
    """Runs in its own process (`--attacker KIND`): prints `ready` once the attack is under way,
    keeps attacking until stdin says `stop` (or its bounded work is done), then prints one JSON
    line of what it saw."""

    def __init__(self, kind: str, p_url: str, net: str, token: str, sizes: Sizes) -> None:
        self.kind, self.p_url, self.net, self.token, self.sizes = kind, p_url, net, token, sizes
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.stats: dict[str, Any] = {"statuses": {}, "requests": 0}
        self._closers: list[Callable[[], Any]] = []

    def count(self, status: int | str) -> None:
        key = str(status)
        self.stats["statuses"][key] = self.stats["statuses"].get(key, 0) + 1
        self.stats["requests"] += 1

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def watch_stdin() -> None:
            await reader.readline()  # "stop\n" or EOF
            self.stop.set()

        async def announce_ready() -> None:
            await self.ready.wait()
            print("ready", flush=True)

        watcher = asyncio.create_task(watch_stdin())
        herald = asyncio.create_task(announce_ready())
        started = self.t0 = time.monotonic()
        try:
            await getattr(self, self.kind)()
        except Exception as exc:  # the bench reports it instead of hanging
            self.stats["error"] = f"{type(exc).__name__}: {exc}"
        self.stats.setdefault("active_s", round(time.monotonic() - self.t0, 2))
        self.ready.set()
        await herald
        await self.stop.wait()
        await self.cleanup()
        watcher.cancel()
        self.stats["seconds"] = round(time.monotonic() - started, 2)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.stats["attacker_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
        return self.stats

    async def cleanup(self) -> None:
        for closer in self._closers:
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                pass

    async def push(self, session: aiohttp.ClientSession, events: list[dict[str, str]]) -> tuple[int, Any]:
        async with session.post(f"{self.p_url}{API}/events", json={"events": events}) as resp:
            body = await resp.read()
            self.count(resp.status)
            try:
                return resp.status, json.loads(body)
            except ValueError:
                return resp.status, None

    # 1 -------------------------------------------------------------- big events
    async def big_events(self) -> None:
        over = {"413": 0}
        async with aiohttp.ClientSession() as session:
            for i in range(self.sizes.big_pushes):
                if self.stop.is_set():
                    break
                if i % 10 == 9:  # over the limit: just over, and ~1 MiB
                    size = MAX_EVENT_BYTES + 1 if i % 20 == 9 else 1 << 20
                    batch = [forge(Identity.generate(), net=self.net, seq=1, prev=None, type="node.joined",
                                   body={"name": "m", "capabilities": {"pad": "y" * size}})]
                else:
                    batch = [forge(Identity.generate(), net=self.net, seq=1, prev=None, type="node.joined",
                                   body={"name": "m", "capabilities": {"pad": "z" * (60 << 10)}}) for _ in range(8)]
                status, answer = await self.push(session, batch)
                if i % 10 == 9:
                    over["413"] += status == 413
                    self.stats["over_limit_pushes"] = self.stats.get("over_limit_pushes", 0) + 1
                elif status == 200 and isinstance(answer, dict):
                    self.stats["stored"] = self.stats.get("stored", 0) + int(answer.get("stored", 0))
                    self.stats["throttled"] = self.stats.get("throttled", 0) + len(answer.get("throttled", []))
                if i == 4:
                    self.ready.set()
                self.stats["offered_mib"] = round(self.stats.get("offered_mib", 0) + sum(
                    len(e["raw"]) for e in batch) / MiB, 1)
        self.stats["over_limit_413"] = over["413"]
        statuses = self.stats["statuses"]
        self.stats["ok"] = (not any(int(s) >= 500 for s in statuses)
                            and over["413"] == self.stats.get("over_limit_pushes", 0))

    # 2 -------------------------------------------------------------- orphan flood
    async def orphans(self) -> None:
        batches = []
        for _ in range(0, self.sizes.orphans, 250):  # signed before the flood, like a prepared attacker
            batches.append([forge(Identity.generate(), net=self.net, seq=2, prev=os.urandom(32).hex(),
                                  type="node.updated", body={}) for _ in range(250)])
        throttled = stored = 0
        self.t0 = time.monotonic()
        async with aiohttp.ClientSession() as session:
            for i in range(len(batches) * self.sizes.orphan_rounds):
                if self.stop.is_set():
                    break
                batch = batches[i % len(batches)]
                status, answer = await self.push(session, batch)
                if status == 429:
                    throttled += len(batch)
                elif status == 200 and isinstance(answer, dict):
                    throttled += len(answer.get("throttled", []))
                    stored += int(answer.get("stored", 0))
                if i == 1:
                    self.ready.set()
            _, info = await get_json(session, f"{self.p_url}{API}/info")
        pending = info.get("pending") if isinstance(info, dict) else None
        self.stats.update(orphans=sum(len(b) for b in batches), pushed=250 * (self.stats["requests"]),
                          throttled=throttled, stored=stored,
                          pending_after=pending, active_s=round(time.monotonic() - self.t0, 2))
        self.stats["ok"] = not any(int(s) >= 500 for s in self.stats["statuses"]) and stored == 0

    # 3 -------------------------------------------------------------- tarpit peer URLs
    async def tarpits(self) -> None:
        held: list[asyncio.StreamWriter] = []
        hits = {"connections": 0}

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hits["connections"] += 1
            held.append(writer)  # accept, say nothing, never close

        servers = [await asyncio.start_server(hold, "127.0.0.1", 0) for _ in range(self.sizes.tarpits)]
        ports = [s.sockets[0].getsockname()[1] for s in servers]

        async def close() -> None:
            for writer in held:
                writer.transport.abort()
            for server in servers:
                server.close()

        self._closers = [close]
        events = [forge(Identity.generate(), net=self.net, seq=1, prev=None, type="node.joined",
                        body={"name": f"tarpit-{i}", "url": f"http://127.0.0.1:{port}", "node_type": "public"})
                  for i, port in enumerate(ports)]
        async with aiohttp.ClientSession() as session:
            status, answer = await self.push(session, events)
            self.stats["announced"] = int(answer.get("stored", 0)) if isinstance(answer, dict) else 0
            self.ready.set()
            await self.stop.wait()
            _, peers = await get_json(session, f"{self.p_url}{API}/peers")
        peers = peers.get("peers", peers) if isinstance(peers, dict) else peers or []
        urls = {f"http://127.0.0.1:{port}" for port in ports}
        mine = [p for p in peers if p.get("url") in urls]
        self.stats.update(tarpit_connections=hits["connections"],
                          tarpit_status={s: sum(p.get("status") == s for p in mine) for s in
                                         sorted({p.get("status") for p in mine})})
        self.stats["ok"] = status == 200 and not any(p.get("status") == "connected" for p in mine)

    # 4 -------------------------------------------------------------- CSRF
    async def csrf(self) -> None:
        port = int(self.p_url.rsplit(":", 1)[1])
        victim = Identity.generate().node_id
        transfer = json.dumps({"to": victim, "amount": 1}).encode()
        task = json.dumps({"task_type": "range_reduce",
                           "config": {"start": 1, "end": 10, "operation": "sum", "max_price": 0.1}}).encode()
        good = {"Content-Type": "application/json", TOKEN_HEADER: self.token}
        evil_host = f"evil.example:{port}"
        kinds: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
            ("POST", "/transfers", transfer, {"Origin": "http://evil.example", "Host": evil_host,
                                              "Content-Type": "text/plain"}, 403),
            ("POST", "/tasks", b"task_type=range_reduce&config=x",
             {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, 403),
            ("POST", "/tasks", b"task_type=range_reduce", {"Content-Type": "application/x-www-form-urlencoded"}, 401),
            ("POST", "/transfers", transfer, {"Content-Type": "application/json"}, 401),
            ("POST", "/transfers", transfer, {"Content-Type": "text/plain"}, 401),
            ("POST", "/sync", None, {}, 401),
            ("DELETE", "/peers/" + "ab" * 32, None, {}, 401),
            ("POST", "/transfers", transfer, {**good, "Origin": "http://evil.example"}, 403),
            ("POST", "/transfers", transfer, {**good, "Origin": "null"}, 403),
            ("POST", "/transfers", transfer, {**good, "Origin": f"http://127.0.0.1:{port + 1}"}, 403),
            ("POST", "/transfers", transfer, {**good, "Host": evil_host}, 403),
            ("POST", "/transfers", transfer, {**good, "Host": f"127.0.0.1.evil.example:{port}"}, 403),
            ("POST", "/transfers", transfer, {TOKEN_HEADER: self.token, "Content-Type": "text/plain"}, 415),
            ("POST", "/transfers", transfer, {TOKEN_HEADER: self.token,
                                              "Content-Type": "multipart/form-data; boundary=x"}, 415),
            ("POST", "/tasks", task, {TOKEN_HEADER: self.token, "Content-Type": "text/plain;charset=UTF-8"}, 415),
            ("POST", "/transfers", transfer, {**good, TOKEN_HEADER: self.token + "x"}, 403),
            ("GET", "/balance", None, {"Host": evil_host}, 403),
            ("GET", "/history", None, {"Origin": "http://evil.example"}, 403),
        ]
        wrong: list[str] = []
        sent = {"n": 0}
        async with aiohttp.ClientSession() as session:
            async def one(i: int) -> None:
                method, path, body, headers, expected = kinds[i % len(kinds)]
                async with session.request(method, f"{self.p_url}{API}{path}", data=body, headers=headers,
                                           skip_auto_headers=("Content-Type",)) as resp:
                    await resp.read()
                    self.count(resp.status)
                    if resp.status != expected and len(wrong) < 10:
                        wrong.append(f"{method} {path} {headers} -> {resp.status}")

            async def lane(lane_no: int) -> None:
                while sent["n"] < self.sizes.csrf_requests and not self.stop.is_set():
                    i = sent["n"]
                    sent["n"] += 1
                    await one(i)
                    if sent["n"] >= 2 * len(kinds):
                        self.ready.set()

            await asyncio.gather(*(lane(n) for n in range(8)))
            self.stats["active_s"] = round(time.monotonic() - self.t0, 2)
            self.ready.set()
            await self.stop.wait()
            status, _ = await get_json(session, f"{self.p_url}{API}/accounts/{victim}",
                                       headers={TOKEN_HEADER: self.token})
        accepted = sum(n for s, n in self.stats["statuses"].items() if int(s) < 400)
        self.stats.update(kinds=len(kinds), accepted=accepted, unexpected=wrong,
                          victim_account=("unknown (404)" if status == 404 else f"HTTP {status}"))
        self.stats["ok"] = accepted == 0 and not wrong and status == 404

    # 5 -------------------------------------------------------------- slow readers
    async def slow_readers(self) -> None:
        port = int(self.p_url.rsplit(":", 1)[1])
        sockets: list[socket.socket] = []
        self._closers = [lambda: close_all(sockets)]
        for i in range(self.sizes.slow_readers):
            path = f"{API}/feed?after=0&limit=5000" if i % 3 else f"{API}/feed/stream?after=0"
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            except OSError as exc:
                self.count(type(exc).__name__)
                sock.close()
                continue
            sock.setblocking(False)
            sockets.append(sock)
            self.count("sent")
            if i % 25 == 24:
                await asyncio.sleep(0)
        self.ready.set()
        started = time.monotonic()
        await self.stop.wait()
        self.stats.update(readers=len(sockets), dropped_by_node=sum(map(_closed_by_peer, sockets)),
                          held_seconds=round(time.monotonic() - started, 1))
        async with aiohttp.ClientSession() as session:
            status, _ = await get_json(session, f"{self.p_url}{API}/info")
        self.stats["info_after"] = status
        self.stats["ok"] = status == 200

    # 6 -------------------------------------------------------------- connection flood
    async def conn_flood(self) -> None:
        port = int(self.p_url.rsplit(":", 1)[1])
        flood: list[socket.socket] = []
        self._closers = [lambda: close_all(flood)]
        for i in range(self.sizes.connections):
            if self.stop.is_set():
                break
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(("127.0.0.1", port))
                flood.append(sock)
            except OSError as exc:
                self.count(type(exc).__name__)
            if i % 20 == 19:
                await asyncio.sleep(0.01)
            if i == min(200, self.sizes.connections - 1):
                self.ready.set()
        self.ready.set()
        await self.stop.wait()
        async with aiohttp.ClientSession() as session:
            status, _ = await get_json(session, f"{self.p_url}{API}/info")
        self.stats.update(opened=len(flood), closed_by_node=sum(map(_closed_by_peer, flood)), info_after=status)
        self.stats["ok"] = status == 200


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """True if the node closed (or reset) this socket; never blocks."""
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def attacker_main(kind: str, p_url: str, net: str, token: str, sizes_json: str) -> None:
    raise_nofile()
    sizes = Sizes(**json.loads(sizes_json))
    stats = asyncio.run(Attacker(kind, p_url, net, token, sizes).run())
    print(json.dumps(stats), flush=True)


class AttackerProc:
    def __init__(self, kind: str, pair: Pair, sizes: Sizes) -> None:
        self.kind, self.pair, self.sizes = kind, pair, sizes
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        assert self.pair.p is not None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--attacker", self.kind, "--target", self.pair.p.url,
            "--net", self.pair.p.net, "--sizes", json.dumps(asdict(self.sizes)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, TOKEN_ENV: self.pair.p.token})  # not in argv: `ps` would show it
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), self.sizes.timeout * 2)
        if line.strip() != b"ready":
            raise RuntimeError(f"attacker {self.kind} did not start: {line[:500]!r}")

    async def stop(self) -> dict[str, Any]:
        if self.proc is None:
            return {}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(b"stop\n")
            await self.proc.stdin.drain()
            self.proc.stdin.close()
            line = await asyncio.wait_for(self.proc.stdout.readline(), self.sizes.timeout)
            await asyncio.wait_for(self.proc.wait(), self.sizes.timeout)
            return json.loads(line) if line.strip() else {"error": "attacker said nothing"}
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ValueError) as exc:
            return {"error": f"attacker did not stop cleanly: {type(exc).__name__}"}
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


# ---------------------------------------------------------------------------- phases

@dataclass
class PhaseResult:
    attack: str
    base_latencies: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    base_rss: int = 0
    rss: int = 0
    handled: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @staticmethod
    def _ms(values: list[float]) -> tuple[float, float]:
        return (statistics.median(values) * 1000, max(values) * 1000) if values else (float("nan"),) * 2

    @property
    def base_ms(self) -> tuple[float, float]:
        return self._ms(self.base_latencies)

    @property
    def ms(self) -> tuple[float, float]:
        return self._ms(self.latencies)

    @property
    def latency_ratio(self) -> float:
        return self.ms[0] / self.base_ms[0] if self.latencies and self.base_latencies else float("nan")

    @property
    def rss_ratio(self) -> float:
        return self.rss / self.base_rss if self.base_rss else float("nan")

    @property
    def met(self) -> bool:
        return self.error is None and self.latency_ratio <= GOAL and self.rss_ratio <= GOAL

    def as_dict(self) -> dict[str, Any]:
        return {"attack": self.attack, "baseline_latency_ms": {"median": self.base_ms[0], "max": self.base_ms[1]},
                "latency_ms": {"median": self.ms[0], "max": self.ms[1]}, "latency_ratio": self.latency_ratio,
                "baseline_peak_rss_mib": self.base_rss / MiB, "peak_rss_mib": self.rss / MiB,
                "rss_ratio": self.rss_ratio, "met": self.met, "handled": self.handled, "seconds": self.seconds,
                "error": self.error, "base_latencies_s": self.base_latencies, "latencies_s": self.latencies}


async def run_phase(attack: str, sizes: Sizes, root: Path) -> PhaseResult:
    """One fresh pair of honest nodes: baseline transfers, then the same under `attack` against P."""
    result = PhaseResult(attack)
    started = time.monotonic()
    pair = Pair(root / attack, sizes)
    (root / attack).mkdir(parents=True)
    attacker: AttackerProc | None = None
    sampler: RssSampler | None = None
    try:
        await pair.start()
        assert pair.p is not None
        if attack == "slow_readers" and sizes.feed_mib:
            result.handled["feed_events"] = await prefill_feed(pair, sizes.feed_mib)
            await pair.transfer_latency()
        # slow readers hurt until P drops them, tarpits until P has probed them all: such a window
        # is sampled over its whole length (the baseline with the same spacing), not its first seconds
        window = {"slow_readers": sizes.slow_window, "tarpits": sizes.tarpit_window}.get(attack, 0.0)
        spacing = window / sizes.transfers if window else None
        sampler = RssSampler(pair.p.proc.pid).start()
        result.base_latencies = await pair.measure(spacing)
        result.base_rss = sampler.stop()
        result.handled["p_cpu_base"] = sampler.cpu

        sampler = RssSampler(pair.p.proc.pid).start()
        attack_started = time.monotonic()
        attacker = AttackerProc(attack, pair, sizes)
        await attacker.start()
        result.latencies = await pair.measure(spacing)
        await asyncio.sleep(max(0.0, window - (time.monotonic() - attack_started)))
        result.handled.update(await attacker.stop())
        result.handled["window_s"] = round(time.monotonic() - attack_started, 1)
        attacker = None
        result.rss = sampler.stop()
        result.handled["p_cpu"] = sampler.cpu
        sampler = None
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        if pair.p is not None:
            result.error += f" | P log: {pair.p.log_tail(3)}"
    finally:
        if attacker is not None:
            result.handled.update(await attacker.stop())
        if sampler is not None:
            result.rss = sampler.stop()
        await pair.stop()
        result.seconds = time.monotonic() - started
    if result.handled.get("error") and not result.error:
        result.error = f"attacker: {result.handled['error']}"
    return result


def describe(result: PhaseResult) -> str:
    h = result.handled
    ok = "ok" if h.get("ok") else "BREACH" if "ok" in h else "?"
    statuses = ",".join(f"{k}×{v}" for k, v in sorted(h.get("statuses", {}).items()))
    if result.attack == "big_events":
        detail = (f"{h.get('offered_mib', 0)} MiB offered; stored {h.get('stored', 0)}, throttled "
                  f"{h.get('throttled', 0)}; over-limit 413 {h.get('over_limit_413', 0)}/"
                  f"{h.get('over_limit_pushes', 0)}")
    elif result.attack == "orphans":
        detail = (f"{h.get('orphans', 0)} orphans ({h.get('pushed', 0)} pushed); stored {h.get('stored', 0)}, "
                  f"throttled {h.get('throttled', 0)}, pending after {h.get('pending_after')}")
    elif result.attack == "tarpits":
        detail = (f"{h.get('announced', 0)} announced; {h.get('tarpit_connections', 0)} probe connections; "
                  f"peer status {h.get('tarpit_status')}")
    elif result.attack == "csrf":
        detail = (f"{h.get('requests', 0)} forged ({h.get('kinds')} kinds), accepted {h.get('accepted')}, "
                  f"victim {h.get('victim_account')}")
        if h.get("unexpected"):
            detail += f"; unexpected: {h['unexpected'][:2]}"
    elif result.attack == "slow_readers":
        detail = (f"{h.get('readers', 0)} readers over {h.get('feed_events', 0)} events, "
                  f"{h.get('dropped_by_node', 0)} dropped by P after {h.get('held_seconds')} s")
    else:
        detail = f"{h.get('opened', 0)} sockets, {h.get('closed_by_node', 0)} closed by P"
    if "active_s" in h and "window_s" in h:
        detail += f"; attacking {h['active_s']:.1f} s of a {h['window_s']:.1f} s window"
    if "p_cpu" in h and "p_cpu_base" in h:
        detail += (f"; P's CPU {h['p_cpu']:.0%} (baseline {h['p_cpu_base']:.0%}), "
                   f"attacker's {h.get('attacker_cpu_s', float('nan')):.1f} CPU-s")
    return f"{ok}: {detail}" + (f" [{statuses}]" if statuses and result.attack in ("big_events", "orphans",
                                                                                      "csrf") else "")


def table(results: list[PhaseResult]) -> str:
    head = ("attack", "baseline med/max ms", "attacked med/max ms", "×base", "base RSS MiB", "peak RSS MiB", "×base",
            "verdict")
    rows = []
    for r in results:
        bm, m = r.base_ms, r.ms
        rows.append((r.attack, f"{bm[0]:.0f} / {bm[1]:.0f}", f"{m[0]:.0f} / {m[1]:.0f}", f"{r.latency_ratio:.2f}",
                     f"{r.base_rss / MiB:.0f}", f"{r.rss / MiB:.0f}", f"{r.rss_ratio:.2f}",
                     "ERROR" if r.error else "met" if r.met else "MISSED"))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.append("")
    for r in results:
        lines.append(f"{r.attack:<13} handled: {describe(r)}")
        if r.error:
            lines.append(f"{'':<13} ERROR: {r.error}")
    return "\n".join(lines)


async def run(attacks: list[str], sizes: Sizes, keep: bool = False) -> list[PhaseResult]:
    raise_nofile()
    root = Path(tempfile.mkdtemp(prefix="ledger-hostile-"))
    results = []
    try:
        for attack in attacks:
            progress(f"[{time.strftime('%H:%M:%S')}] {attack} …")
            result = await run_phase(attack, sizes, root)
            progress(f"    baseline {result.base_ms[0]:.0f} ms, attacked {result.ms[0]:.0f} ms; RSS "
                     f"{result.base_rss / MiB:.0f} -> {result.rss / MiB:.0f} MiB ({result.seconds:.1f} s)"
                     + (f"; ERROR {result.error}" if result.error else ""))
            results.append(result)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            progress(f"node data dirs and logs kept in {root}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", action="append", choices=ATTACKS, help="run only this attack (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smaller attacks, fewer transfers")
    parser.add_argument("--transfers", type=int, help="honest transfers per window")
    parser.add_argument("--big-pushes", type=int)
    parser.add_argument("--orphans", type=int)
    parser.add_argument("--tarpits", type=int)
    parser.add_argument("--csrf-requests", type=int)
    parser.add_argument("--slow-readers", type=int)
    parser.add_argument("--feed-mib", type=int)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--slow-window", type=float, help="seconds the slow readers are held (default 16)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' data dirs and logs")
    # the attacker child process
    parser.add_argument("--attacker", choices=ATTACKS, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.attacker:
        attacker_main(args.attacker, args.target, args.net, os.environ.pop(TOKEN_ENV, ""), args.sizes)
        return 0
    sizes = Sizes.quick() if args.quick else Sizes()
    for name in ("transfers", "big_pushes", "orphans", "tarpits", "csrf_requests", "slow_readers", "feed_mib",
                 "connections", "slow_window"):
        if getattr(args, name) is not None:
            setattr(sizes, name, getattr(args, name))
    attacks = list(dict.fromkeys(args.attack or ATTACKS))  # each phase once, in the order given
    started = time.monotonic()
    results = asyncio.run(run(attacks, sizes, keep=args.keep))
    elapsed = time.monotonic() - started
    missed = [r.attack for r in results if not r.met and not r.error]
    failed = [r.attack for r in results if r.error]
    if args.json:
        print(json.dumps({"sizes": asdict(sizes), "goal": GOAL, "seconds": elapsed, "cpus": os.cpu_count(),
                          "load": os.getloadavg()[0], "results": [r.as_dict() for r in results],
                          "missed": missed, "errors": failed}, indent=1))
        return 0
    print(f"hostile peers: {len(results)} attack(s), {sizes.transfers} honest transfers P→Q per window, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, {elapsed:.0f} s")
    print(f"goal: attacked median latency ≤ {GOAL:g}× baseline median and peak RSS of P ≤ {GOAL:g}× baseline peak")
    print()
    print(table(results))
    print()
    print("goal met under every attack measured" if not missed else f"goal MISSED under: {', '.join(missed)}")
    if failed:
        print(f"not measured (the phase failed, see ERROR above): {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
