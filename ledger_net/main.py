"""`ComputeNetwork`: one node of the network, wired together.

It opens the node's books (key + ledger + projections) in its data directory,
serves the HTTP API, feed and `/ws` (replicating with peers), runs the task
engine on sandboxed workers, and exposes the seed's API. A node started with no
seed nodes and an empty ledger founds a new network and is its issuer (it mints
`initial_credits` to itself); with seed nodes it joins theirs.

Over 400 lines because `ComputeNetwork` is the seed's whole API on one object (lifecycle, status,
tasks, nodes, metrics), each method a short call into the parts it wires.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

from .compute import unpack
from .core.credits import Credits
from .core.founding import found_network
from .core.money import to_credits
from .core.node import Capabilities, Node
from .core.task import Task
from .errors import LedgerNetError, NetworkError, NodeError, TaskError
from .execution.blobs import BlobSink, BlobStore
from .execution.engine import TaskEngine
from .execution.executor import ChunkExecutor
from .execution.partial_blobs import PartialBlob, RowFetches
from .ledger.chain import Ledger
from .ledger.datadir import DataDir
from .ledger.identity import Identity, Passphrase
from .ledger.lock import NodeLock
from .market import PricingEngine, Router
from .network.control import control_routes
from .network.metrics import metrics_routes
from .network.openapi import openapi_routes
from .network.server import NodeServer, open_local
from .projections.rows import TaskRow
from .projections.runner import ProjectionRunner
from .projections.status import TERMINAL, TaskStatus
from .sandbox import view
from .sandbox.limits import SandboxType, offered_types
from .sandbox.process import ProcessSandboxExecutor
from .web.explorer import explorer_routes

log = logging.getLogger(__name__)

DEFAULT_INITIAL_CREDITS = 100.0


def default_data_dir(host: str, port: int) -> Path:
    root = Path(os.environ.get("LEDGER_NET_DATA_DIR") or Path.home() / ".ledger_net")
    return root / "nodes" / f"{host}-{port}"




class ComputeNetwork:
    """The seed's entry point: a node that is a member (or the founder) of a network."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5557, node_type: str = "client",
                 seed_nodes: list[str] | None = None, config_path: str | None = None,
                 log_level: str = "INFO", *, data_dir: str | os.PathLike[str] | None = None,
                 database_url: str | None = None, initial_credits: float | None = None,
                 network_name: str = "ledger-net", sync_interval: float = 1.0, quote_window: float = 0.2,
                 workers: int | None = None, key_passphrase: str | bytes | Passphrase | None = None,
                 allowed_hosts: list[str] | None = None, allow_link_local: bool = False,
                 sandbox_types: list[str] | None = None, sandbox_floor: str = "process_isolation",
                 new_network: bool = False) -> None:
        settings: dict[str, Any] = {}
        if config_path is not None:
            settings = _load_config(config_path)
        self.host = settings.get("host", host)
        self.port = int(settings.get("port", port))
        self.node_type = settings.get("node_type", node_type)
        if self.node_type not in ("client", "public", "seed"):
            raise NodeError(f"node_type must be client, public or seed, not {self.node_type!r}")
        self.seed_nodes = list(settings.get("seed_nodes", seed_nodes or []))
        self.data_dir = Path(settings.get("data_dir") or data_dir or default_data_dir(self.host, self.port))
        self.database_url = settings.get("database_url", database_url)
        self.initial_credits = float(settings.get("initial_credits", initial_credits if initial_credits is not None
                                                  else DEFAULT_INITIAL_CREDITS))
        self.network_name = settings.get("network_name", network_name)
        self.sync_interval = float(settings.get("sync_interval", sync_interval))
        self.quote_window = float(settings.get("quote_window", quote_window))
        # Checkpoints (docs/proofs.md): sign one every N events or T seconds; both 0 (the
        # default): only on request. Config-file keys only: the seed's signature stays as it is.
        self.checkpoint_every = int(settings.get("checkpoint_every", 0))
        self.checkpoint_seconds = float(settings.get("checkpoint_seconds", 0.0))
        if self.checkpoint_every < 0 or self.checkpoint_seconds < 0:
            raise NodeError("checkpoint_every and checkpoint_seconds must not be negative")
        self.workers = int(settings.get("workers", workers or max(1, min(4, os.cpu_count() or 1))))
        # Host names the control API answers to besides the bound host and localhost (see
        # docs/security.md), and whether peers at link-local addresses may be contacted.
        self.allowed_hosts = [str(h) for h in settings.get("allowed_hosts", allowed_hosts or [])]
        self.allow_link_local = bool(settings.get("allow_link_local", allow_link_local))
        # Which sandboxes this node offers (default: every one it can build) and the weakest it
        # accepts: a task asking for less gets no bid; a code task asking for none runs at the floor.
        # Found a network even though the data dir already holds a key (see _start_locked).
        self.new_network = bool(new_network)
        self.sandbox_floor = SandboxType.parse(settings.get("sandbox_floor", sandbox_floor)).value
        wanted_types = settings.get("sandbox_types", sandbox_types)
        self.sandbox_types = [SandboxType.parse(t).value for t in wanted_types] if wanted_types is not None else None
        level = str(settings.get("log_level", log_level)).upper()
        if level not in logging.getLevelNamesMapping():
            raise NodeError(f"unknown log level {level!r}")
        logging.getLogger("ledger_net").setLevel(level)
        # A sealed node.key is opened with this at start; a fresh one is created sealed under it.
        # Held masked (its repr hides it) and dropped once the key is open: the node keeps the
        # unsealed key for restarts, never the passphrase. Never read from the config file.
        self._key_passphrase = Passphrase(key_passphrase) if key_passphrase is not None else None
        self._identity: Identity | None = None
        self.ledger: Ledger | None = None
        self.runner: ProjectionRunner | None = None
        self.server: NodeServer | None = None
        self.engine: TaskEngine | None = None
        self.executor: ChunkExecutor | None = None
        self.node: Node | None = None
        self.credits: Credits | None = None
        self.blobs: BlobStore | None = None
        self.pricing = PricingEngine()
        # Up to four chunks wait per slot at a worker: short chunks run back to back instead
        # of each waiting for its assignment's round trip (see market/routing.py).
        self.router = Router(queue_per_slot=4)
        self._started_at: float | None = None
        self._lock: NodeLock | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the books, serve, join or found the network, and start working.

        The node holds its data dir and database for its whole life, so that a second
        process signing with the same key (a fork) is refused (see ledger/lock.py)."""
        if self.server is not None:
            raise NodeError("the network node is already started")
        self._lock = lock = NodeLock(self.data_dir).acquire()
        try:
            lock.claim(self.database_url)
            await self._start_locked(lock)
        except BaseException:
            if self.ledger is None and self._lock is not None:  # else the books hold it (or released it)
                self._lock.release()
                self._lock = None
            raise

    async def _start_locked(self, lock: NodeLock) -> None:
        # Refuse to work without isolation: the self-test proves (fork refused, loopback
        # unreachable, read-only root, private dir writable) or raises a SandboxError saying
        # what is missing, before this node offers to run anyone's chunks.
        view.protect(self.data_dir)  # no sandbox of this process ever shows this node's files
        self.sandbox_self_test = await ProcessSandboxExecutor().run_self_test()
        if self._identity is None:  # a wrong passphrase stops the start here, before the books open
            self._identity = await asyncio.to_thread(Identity.load_or_create, self.data_dir, self._key_passphrase)
            self._key_passphrase = None
        ledger, runner = await asyncio.to_thread(open_local, self.data_dir, self.database_url,
                                                 identity=self._identity)
        self.ledger, self.runner = ledger, runner
        founding = ledger.net is None and not self.seed_nodes
        known = DataDir.of(self.data_dir).recorded_network()
        if founding and known is not None and not self.new_network:
            # This key already has books (the data dir recorded their network) and these are empty:
            # an operator's slip, e.g. the database URL left out. Founding would give the key a
            # second, unrelated history.
            where = "its database" if self.database_url else f"{DataDir(self.data_dir).database}"
            await asyncio.to_thread(ledger.close)
            self.ledger = self.runner = None
            raise NodeError(f"{self.data_dir} holds the key of node {ledger.node_id[:16]}…, whose books are on "
                            f"network {known[:16]}…, but {where} has no books: if they live in another database, "
                            "give its URL (--db-url); to found a new network with this key anyway, pass --new-network")
        if founding:
            try:
                found_network(ledger, self.network_name, self.initial_credits)
            except BaseException:
                await self._close_books(hard=False)
                raise
        self.server = NodeServer(ledger, runner, host=self.host, port=self.port, seeds=self.seed_nodes,
                                 data_dir=self.data_dir, sync_interval=self.sync_interval,
                                 extra_routes=_http_routes(self), allowed_hosts=self.allowed_hosts,
                                 allow_link_local=self.allow_link_local, ready=self._engine_not_ready,
                                 checkpoint_every=self.checkpoint_every,
                                 checkpoint_seconds=self.checkpoint_seconds)
        try:
            await self.server.start()
            lock.record(ledger.store, ledger.node_id, self.server.url)
            if ledger.net is None:
                await self.server.wait_for_network(timeout=30.0)
        except BaseException:
            await self._close_books(hard=False)
            raise
        ledger.store.blob_dir = DataDir(self.data_dir).blobs
        self.blobs = BlobStore(ledger.store, fetcher=self._fetch_blob)
        # One task slot per sandboxed worker: a node offers what it can run at once.
        detected = Capabilities.detect()
        capabilities = dataclasses.replace(
            detected, max_concurrent_tasks=self.workers,
            sandbox_types=offered_types(detected.sandbox_types, self.sandbox_floor, self.sandbox_types))
        self.node = Node(node_id=ledger.node_id, host=self.host, port=self.server.port,
                         capabilities=capabilities, node_type=self.node_type)
        self.node.bind(ledger, runner, peers=_PeerDirectory(self.server))
        await self.node.start()
        self.credits = Credits(initial_balance=0.0, ledger=ledger, runner=runner)
        self.executor = ChunkExecutor(workers=self.workers, work_dir=DataDir(self.data_dir).work,
                                      sandbox_floor=self.sandbox_floor)
        await self.executor.start()
        self.engine = TaskEngine(ledger, runner, self.executor, self.blobs, pricing=self.pricing, router=self.router,
                                 node=self.node, quote_window=self.quote_window,
                                 load_ppm=lambda: int(min(1.0, self.node.get_current_load().get("load_ratio", 0.0))
                                                      * 1_000_000) if self.node else 0)
        self.engine.max_concurrent = capabilities.max_concurrent_tasks
        blob_dir = ledger.store.blob_dir
        self.engine.rows = RowFetches(self.blobs, self._fetch_pieces, blob_dir / ".partial" if blob_dir else None)
        await self.engine.start()
        self._started_at = time.time()
        if ledger.net is not None:
            await asyncio.to_thread(DataDir.of(self.data_dir).record_network, ledger.net)
        log.info("node %s serving %s", ledger.node_id[:16], self.server.url)

    async def stop(self) -> None:
        """Stop working and serving; the books stay on disk for the next start."""
        self._started_at = None  # not ready from here on (/readyz and the control API say so)
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None
        if self.executor is not None:
            await self.executor.close()
            self.executor = None
        if self.node is not None:
            with contextlib.suppress(LedgerNetError):
                await self.node.stop()
        await self._close_books(hard=False)

    async def _close_books(self, hard: bool) -> None:
        if self.server is not None:
            await self.server.stop(hard=hard)
            self.server = None
        if self.runner is not None and not hard:
            self.runner.flush()
        if self.ledger is not None:
            self.ledger.close()
        self.ledger, self.runner = None, None
        if self._lock is not None:  # only once the books are closed
            self._lock.release()
            self._lock = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def not_ready(self) -> str | None:
        """Why this node does not accept tasks and transfers now (None: it does). One
        answer for `/readyz` and every control route, so they never disagree."""
        if self.server is None:
            return "the node is not started"
        return self.server.not_ready()

    def _engine_not_ready(self) -> str | None:
        if self._started_at is None or self.engine is None or self.credits is None:
            return "the node is starting or stopping; try again"
        return None

    def _require(self) -> tuple[Ledger, ProjectionRunner, TaskEngine]:
        if self.ledger is None or self.runner is None or self.engine is None:
            raise NodeError("the network node is not started: await network.start() first")
        return self.ledger, self.runner, self.engine

    async def _fetch_blob(self, hash_: str, sink: BlobSink) -> bool:
        if self.server is None:
            return False
        return await self.server.fetch_blob(hash_, sink)

    async def _fetch_pieces(self, name: str, partial: PartialBlob, wanted: Sequence[int]) -> bool:
        if self.server is None:
            return False
        return await self.server.fetch_pieces(name, partial, wanted)

    # ------------------------------------------------------------ status
    async def get_network_status(self) -> dict[str, Any]:
        ledger, runner, _ = self._require()
        nodes = runner.nodes.nodes
        return {"running": True, "node_id": ledger.node_id, "url": self.server.url if self.server else None,
                "network_id": ledger.net, "total_nodes": len(nodes),
                "online_nodes": sum(1 for n in nodes.values() if n["status"] == "online"),
                "peers": self.server.list_peers() if self.server else [], "events": ledger.store.last_offset(),
                "pending_events": len(ledger.pending), "forks": dict(ledger.state.frozen),
                "state_hash": runner.state_hash(), "uptime_seconds": time.time() - (self._started_at or time.time())}

    async def get_node_info(self) -> dict[str, Any]:
        ledger, runner, _ = self._require()
        assert self.node is not None
        info = await self.node.get_status()
        info["balance"] = self.credits.get_balance() if self.credits else 0.0
        info["reputation"] = runner.reputation.score(ledger.node_id) / 1_000_000
        info["url"] = self.server.url if self.server else None
        return info

    # ------------------------------------------------------------ tasks
    async def submit_task(self, task_data: dict[str, Any]) -> str:
        """Escrow and publish a task (a `Task.to_dict()` or the seed's task dict); returns its id."""
        ledger, _, engine = self._require()
        if not isinstance(task_data, dict):
            raise TaskError("task_data must be a dict (e.g. Task.to_dict())")
        task = Task.from_dict(dict(task_data))
        task.owner_id = ledger.node_id  # the signer owns the task, whatever the dict says
        return engine.submit(task)

    def _task_row(self, task_id: str) -> TaskRow:
        _, runner, _ = self._require()
        if not isinstance(task_id, str):
            raise TaskError("task_id must be a string")
        row = runner.tasks.tasks.get(task_id)
        if row is None:
            raise TaskError(f"task {task_id!r} not found")
        return row

    async def get_task_status(self, task_id: str) -> dict[str, Any]:
        row = self._task_row(task_id)
        ledger, runner, _ = self._require()
        decimals = ledger.state.decimals
        return {"task_id": task_id, "status": row["status"], "progress": runner.tasks.progress(task_id),
                "task_type": row["task_type"], "owner_id": row["owner"], "chunks_total": row["chunks_total"],
                "chunks_done": row["chunks_done"], "chunks_failed": row["chunks_failed"],
                "escrow": to_credits(row["escrow"], decimals), "paid": to_credits(row["paid"], decimals),
                "refund": to_credits(row["refund"], decimals), "error": row["reason"],
                "workers": runner.tasks.workers_of(task_id),
                "submitted_at": row["submitted_ts"] / 1000.0,
                "finished_at": row["finished_ts"] / 1000.0 if row["finished_ts"] else None}

    async def cancel_task(self, task_id: str) -> bool:
        self._task_row(task_id)
        _, _, engine = self._require()
        return engine.cancel(task_id)

    async def get_task_result(self, task_id: str) -> Any:
        row = self._task_row(task_id)
        if row["status"] != TaskStatus.COMPLETED:
            raise TaskError(f"task {task_id} has no result: it is {row['status']}"
                            + (f" ({row['reason']})" if row["reason"] else ""))
        if row["result"] is not None:
            return unpack(json.loads(row["result"]))
        if row["result_hash"] is None:
            raise TaskError(f"task {task_id} completed without a result")
        assert self.blobs is not None
        return await self.blobs.fetch_value(row["result_hash"])

    # ------------------------------------------------------------ nodes
    async def get_nodes_list(self) -> list[dict[str, Any]]:
        self._require()
        assert self.server is not None
        return self.server.get_nodes_list()

    async def get_node_details(self, node_id: str) -> dict[str, Any]:
        _, runner, _ = self._require()
        assert self.server is not None
        details = self.server.get_node_details(node_id)
        details["reputation"] = runner.reputation.score(node_id) / 1_000_000
        return details

    async def connect_to_node(self, node_id: str) -> bool:
        self._require()
        assert self.server is not None
        if not isinstance(node_id, str) or not node_id.strip():
            raise NetworkError("give a node id or URL to connect to")
        return await self.server.connect_to_node(node_id)

    async def disconnect_from_node(self, node_id: str) -> bool:
        self._require()
        assert self.server is not None
        return await self.server.disconnect_from_node(node_id)

    # ------------------------------------------------------------ metrics
    async def get_network_metrics(self) -> dict[str, Any]:
        ledger, runner, _ = self._require()
        tasks = runner.tasks.tasks
        nodes = runner.nodes.nodes
        return {"total_nodes": len(nodes), "online_nodes": sum(1 for n in nodes.values() if n["status"] == "online"),
                "active_tasks": sum(1 for t in tasks.values() if t["status"] not in TERMINAL),
                "total_tasks": len(tasks), "cpu_usage": psutil.cpu_percent(interval=None),
                "ram_usage": psutil.virtual_memory().percent, "events": ledger.store.last_offset(),
                "peers": len(self.server.list_peers()) if self.server else 0, "forks": len(ledger.state.frozen)}

    async def get_task_metrics(self) -> dict[str, Any]:
        ledger, runner, _ = self._require()
        tasks = list(runner.tasks.tasks.values())
        finished = [t for t in tasks if t["status"] in TERMINAL]
        completed = [t for t in finished if t["status"] == TaskStatus.COMPLETED]
        durations = [(t["finished_ts"] - t["submitted_ts"]) / 1000.0 for t in completed if t["finished_ts"]]
        decimals = ledger.state.decimals
        by_status: dict[str, int] = {}
        for t in tasks:
            by_status[t["status"]] = by_status.get(t["status"], 0) + 1
        return {"total_tasks": len(tasks), "by_status": by_status,
                "avg_execution_time": sum(durations) / len(durations) if durations else 0.0,
                "success_rate": 100.0 * len(completed) / len(finished) if finished else 0.0,
                "avg_cost": to_credits(sum(t["paid"] for t in completed) // len(completed), decimals)
                if completed else 0.0,
                "chunks_executed_here": self.executor.stats["chunks"] if self.executor else 0,
                "sandbox_failures": dict(self.executor.failures) if self.executor else {}}

    async def get_resource_metrics(self) -> dict[str, Any]:
        self._require()
        assert self.node is not None
        load = self.node.get_current_load()
        disk = psutil.disk_usage(str(self.data_dir))
        return {"cpu_percent": psutil.cpu_percent(interval=None), "ram_percent": psutil.virtual_memory().percent,
                "ram_available_gb": psutil.virtual_memory().available / 2**30, "disk_percent": disk.percent,
                "active_tasks": load.get("active_tasks", 0), "load": load,
                "capabilities": self.node.capabilities.to_dict(), "sandbox_workers": self.workers}

    async def get_credit_metrics(self) -> dict[str, Any]:
        self._require()
        assert self.credits is not None
        return self.credits.get_credit_metrics()


def _http_routes(network: ComputeNetwork) -> list[web.RouteDef]:
    """Routes a ComputeNetwork node serves beside the replication API (control API,
    explorer, metrics, OpenAPI): one line per module here. Each builder receives the node
    as the narrow port it declares (network/ports.py), so none of them imports main."""
    return [*control_routes(network), *explorer_routes(network), *metrics_routes(network),
            *openapi_routes(network)]


class _PeerDirectory:
    """What a bound Node needs of the network layer."""

    def __init__(self, server: NodeServer) -> None:
        self.server = server

    async def connect(self, peer_id: str) -> bool:
        return await self.server.connect_to_node(peer_id)

    async def disconnect(self, peer_id: str) -> bool:
        return await self.server.disconnect_from_node(peer_id)

    def list(self) -> list[dict[str, Any]]:
        return self.server.list_peers()


def _load_config(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise NodeError(f"config file {path} not found")
    text = file.read_text()
    try:
        if file.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        data = json.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise NodeError(f"config file {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise NodeError(f"config file {path} must hold an object")
    return data
