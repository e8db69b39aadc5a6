"""Node and Capabilities: the seed's example, availability rules, ledger presence, peers and states."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from ledger_net.core.node import ALL_TASK_TYPES, Capabilities, Node, PeerDirectory, unmet_requirements
from ledger_net.core.private_ledger import private_network
from ledger_net.errors import NetworkError, NodeError


class FakeProbe:
    """Deterministic load so availability tests do not depend on the machine's CPU."""

    def __init__(self, cpu: float = 0.0, ram_percent: float = 10.0, ram_available_gb: float = 64.0) -> None:
        self.cpu_used, self.ram_percent, self.ram_available_gb = cpu, ram_percent, ram_available_gb

    def prime(self) -> None:
        pass

    def cpu(self) -> tuple[float, float]:
        return self.cpu_used, self.cpu_used

    def memory(self) -> tuple[float, float]:
        return self.ram_percent, self.ram_available_gb


class FakePeers:
    def __init__(self, known: list[dict[str, Any]]) -> None:
        self.known = known
        self.calls: list[tuple[str, str]] = []

    async def connect(self, peer_id: str) -> bool:
        self.calls.append(("connect", peer_id))
        return True

    async def disconnect(self, peer_id: str) -> bool:
        self.calls.append(("disconnect", peer_id))
        return True

    def list(self) -> list[dict[str, Any]]:
        return list(self.known)


def seed_caps(**kw: Any) -> Capabilities:
    args = dict(cpu_score=8.0, ram_gb=16.0, disk_gb=500.0, gpu_score=2.0, max_concurrent_tasks=20)
    args.update(kw)
    return Capabilities(**args)


async def started(caps: Capabilities | None = None, probe: FakeProbe | None = None) -> Node:
    node = Node(node_id="node-001", host="127.0.0.1", port=5557, capabilities=caps or seed_caps(),
                node_type="public")
    node.probe = probe or FakeProbe()  # type: ignore[assignment]
    await node.start()
    return node


# --------------------------------------------------------------------------- the seed's example
async def test_seed_node_example(capsys: pytest.CaptureFixture[str]) -> None:
    # The seed's example verbatim except the import prefix and loopback instead of 192.168.1.100.
    async def node_example() -> tuple[dict[str, Any], bool]:
        capabilities = Capabilities(cpu_score=8.0, ram_gb=16.0, disk_gb=500.0, gpu_score=2.0,
                                    max_concurrent_tasks=20)
        node = Node(node_id="node-001", host="127.0.0.1", port=5557, capabilities=capabilities,
                    node_type="public")
        try:
            await node.start()
            status = await node.get_status()
            print(f"📊 Статус узла: {status}")
            task_requirements = {"cpu_percent": 30.0, "ram_gb": 2.0, "timeout_seconds": 60}
            available = node.is_available_for_task(task_requirements)
            print(f"✅ Доступность для задачи: {available}")
        finally:
            await node.stop()
        return status, available

    status, available = await node_example()
    out = capsys.readouterr().out
    assert "Статус узла" in out and "Доступность для задачи" in out
    assert status["node_id"] == "node-001" and status["status"] == "online"
    assert status["host"] == "127.0.0.1" and status["port"] == 5557 and status["node_type"] == "public"
    assert status["capabilities"]["ram_gb"] == 16.0 and status["capabilities"]["max_concurrent_tasks"] == 20
    assert len(status["ledger_id"]) == 64 and status["ledger_id"] != "node-001"
    assert status["peers"] == [] and status["active_tasks"] == 0 and status["uptime_seconds"] >= 0
    assert set(status["load"]) >= {"cpu_percent", "ram_percent", "active_tasks", "load_ratio"}
    assert isinstance(available, bool)


async def test_standalone_start_records_node_joined_in_private_ledger() -> None:
    node = await started()
    assert node.runner is not None
    row = node.runner.nodes.describe(node.ledger_id)
    assert row["name"] == "node-001" and row["url"] == "http://127.0.0.1:5557"
    assert row["node_type"] == "public" and row["status"] == "online"
    assert row["capabilities"] == {"cpu_milli": 8000, "ram_mb": 16384, "disk_mb": 512000, "gpu_milli": 2000,
                                   "max_concurrent_tasks": 20, "task_types": sorted(ALL_TASK_TYPES),
                                   "sandbox_types": ["process_isolation"]}
    await node.stop()
    assert (await node.get_status())["status"] == "offline"


# --------------------------------------------------------------------------- capabilities
def test_capabilities_ledger_form_is_integer_only_and_round_trips() -> None:
    caps = Capabilities(cpu_score=2.5, ram_gb=0.5, disk_gb=1.25, gpu_score=0.0, max_concurrent_tasks=3,
                        task_types=["map", "range_reduce"], sandbox_types=["wasm", "process_isolation"])
    ledger = caps.to_ledger()
    for key in ("cpu_milli", "ram_mb", "disk_mb", "gpu_milli", "max_concurrent_tasks"):
        assert type(ledger[key]) is int
    assert ledger["cpu_milli"] == 2500 and ledger["ram_mb"] == 512 and ledger["disk_mb"] == 1280
    assert Capabilities.from_ledger(ledger) == caps
    assert Capabilities.from_any(ledger) == caps and Capabilities.from_any(caps.to_dict()) == caps


def test_capabilities_defaults_and_detect() -> None:
    caps = Capabilities()
    assert set(caps.task_types) == set(ALL_TASK_TYPES) and caps.sandbox_types == ["process_isolation"]
    detected = Capabilities.detect()
    assert detected.cpu_score >= 1 and detected.ram_gb > 0 and detected.disk_gb > 0
    assert detected.max_concurrent_tasks >= 1 and "process_isolation" in detected.sandbox_types
    assert Node("n", "127.0.0.1", 1).capabilities.max_concurrent_tasks >= 1  # detected when not given


@pytest.mark.parametrize("bad", [dict(ram_gb=-1), dict(cpu_score=float("nan")), dict(max_concurrent_tasks=1.5),
                                 dict(max_concurrent_tasks=True), dict(task_types="map"), dict(gpu_score="x")])
def test_capabilities_reject_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(NodeError):
        Capabilities(**bad)


@pytest.mark.parametrize("bad", [{"ram_mb": -5}, {"cpu_milli": 1.5}, {"max_concurrent_tasks": "3"}, []])
def test_from_ledger_rejects_malformed(bad: Any) -> None:
    with pytest.raises(NodeError):
        Capabilities.from_ledger(bad)


@pytest.mark.parametrize("args", [("", "h", 1), ("n", "", 1), ("n", "h", 70000), ("n", "h", "80"), ("x" * 200, "h", 1)])
def test_constructor_rejects_bad_identity(args: tuple[Any, ...]) -> None:
    with pytest.raises(NodeError):
        Node(*args, capabilities=Capabilities())


# --------------------------------------------------------------------------- availability
REQ = {"cpu_percent": 30.0, "ram_gb": 2.0, "timeout_seconds": 60}


async def test_available_when_everything_fits() -> None:
    node = await started()
    assert node.is_available_for_task(REQ)
    assert node.is_available_for_task({})


async def test_cpu_headroom() -> None:
    node = await started(probe=FakeProbe(cpu=75.0))
    assert not node.is_available_for_task(REQ)  # 30 % needed, 25 % free
    assert node.is_available_for_task({**REQ, "cpu_percent": 25.0})
    assert any("cpu" in r for r in node.unmet_requirements(REQ))


async def test_ram_against_capabilities_and_free_memory() -> None:
    node = await started(caps=seed_caps(ram_gb=1.0))
    assert not node.is_available_for_task(REQ)  # offers 1 GB, needs 2
    node = await started(probe=FakeProbe(ram_available_gb=1.5))
    assert not node.is_available_for_task(REQ)  # offers 16 GB but only 1.5 free now
    node.probe.ram_available_gb = 3.0  # type: ignore[attr-defined]
    assert node.is_available_for_task(REQ)


async def test_gpu_needs_gpu_score() -> None:
    node = await started(caps=seed_caps(gpu_score=0.0))
    assert not node.is_available_for_task({**REQ, "gpu_percent": 10})
    assert node.is_available_for_task({**REQ, "gpu_percent": 0})
    node = await started()
    assert node.is_available_for_task({**REQ, "gpu_percent": 10})


async def test_slots_task_type_and_sandbox() -> None:
    node = await started(caps=seed_caps(max_concurrent_tasks=1, task_types=["map"]))
    assert node.is_available_for_task({**REQ, "task_type": "map", "sandbox_type": "process_isolation"})
    assert not node.is_available_for_task({**REQ, "task_type": "matrix_ops"})
    assert not node.is_available_for_task({**REQ, "sandbox_type": "wasm"})
    with node.task_slot():
        assert node.active_tasks == 1 and not node.is_available_for_task(REQ)
        assert node.get_current_load()["load_ratio"] == 1.0
        with pytest.raises(NodeError, match="no free task slot"):
            node.task_started()
    assert node.active_tasks == 0 and node.is_available_for_task(REQ)
    with pytest.raises(NodeError):
        node.task_finished()


@pytest.mark.parametrize("bad", [{"timeout_seconds": 0}, {"timeout_seconds": -5}, {"cpu_percent": 150},
                                 {"cpu_percent": "lots"}, {"ram_gb": -1}, {"gpu_percent": True},
                                 {"task_type": 3}, {"ram_gb": float("inf")}])
async def test_malformed_requirements_raise(bad: dict[str, Any]) -> None:
    node = await started()
    with pytest.raises(NodeError):
        node.is_available_for_task({**REQ, **bad})


async def test_requirements_must_be_a_dict_and_offline_node_is_unavailable() -> None:
    node = Node("n", "127.0.0.1", 1, capabilities=seed_caps())
    with pytest.raises(NodeError):
        node.is_available_for_task(["cpu"])  # type: ignore[arg-type]
    assert not node.is_available_for_task(REQ)  # not started


def test_unmet_requirements_on_ledger_capabilities_ignores_live_measures() -> None:
    caps = Capabilities.from_ledger(seed_caps().to_ledger())
    assert unmet_requirements(caps, {"cpu_percent": 100.0, "ram_gb": 16.0}) == []
    assert unmet_requirements(caps, {"ram_gb": 17.0})


async def test_real_load_measure() -> None:
    node = Node("n", "127.0.0.1", 1, capabilities=seed_caps())
    await node.start()
    await asyncio.sleep(0.25)
    load = node.get_current_load()
    assert 0.0 <= load["cpu_percent"] <= 100.0 and 0.0 < load["ram_percent"] <= 100.0
    assert all(isinstance(v, float) for v in load.values())
    assert 0 <= node.load_ppm() <= 1_000_000


# --------------------------------------------------------------------------- state rules
async def test_state_rules() -> None:
    node = Node("n", "127.0.0.1", 1, capabilities=seed_caps())
    status = await node.get_status()  # fine before start
    assert status["status"] == "offline" and status["ledger_id"] is None
    await node.stop()  # stopping a stopped node is a no-op
    await node.start()
    with pytest.raises(NodeError, match="already running"):
        await node.start()
    key = node.ledger_id
    await node.restart()
    assert node.is_online and node.ledger_id == key  # the same identity after a restart


async def test_restart_does_not_rejoin_but_records_changes() -> None:
    node = await started()
    ledger = node.ledger
    assert ledger is not None
    types = lambda: [row.type for row in ledger.stored()]  # noqa: E731 -- a one-line probe, read as a value
    assert types().count("node.joined") == 1
    await node.restart()
    assert types().count("node.joined") == 1 and "node.updated" not in types()
    await node.stop()
    node.port = 6000
    await node.start()
    assert types().count("node.joined") == 1 and types().count("node.updated") == 1
    assert node.runner.nodes.nodes[node.ledger_id]["url"] == "http://127.0.0.1:6000"  # type: ignore[index]


# --------------------------------------------------------------------------- bound nodes
async def test_bound_node_appends_joined_and_updated_with_integer_capabilities() -> None:
    ledger, runner = private_network("bound")
    node = Node("worker-a", "127.0.0.1", 7001, capabilities=seed_caps(), node_type="public")
    node.probe = FakeProbe()  # type: ignore[assignment]
    node.bind(ledger, runner)
    await node.start()
    assert node.ledger_id == ledger.node_id
    node.update_capabilities({"ram_gb": 32.0, "max_concurrent_tasks": 8})
    events = [(row.type, orjson.loads(row.raw)["body"]) for row in ledger.stored()]
    joined = [b for t, b in events if t == "node.joined"]
    updated = [b for t, b in events if t == "node.updated"]
    assert len(joined) == 1 and joined[0]["name"] == "worker-a" and joined[0]["url"] == "http://127.0.0.1:7001"
    assert joined[0]["node_type"] == "public"
    assert updated == [{"capabilities": {**seed_caps().to_ledger(), "ram_mb": 32768, "max_concurrent_tasks": 8}}]
    for body in joined + updated:
        assert all(type(v) is int for k, v in body["capabilities"].items() if k not in ("task_types", "sandbox_types"))
    row = runner.nodes.describe(ledger.node_id)
    assert row["capabilities"]["ram_mb"] == 32768 and row["status"] == "online"
    # unchanged capabilities: nothing appended; bad ones: NodeError, nothing appended
    count = len(list(ledger.stored()))
    node.update_capabilities({"ram_gb": 32.0})
    with pytest.raises(NodeError):
        node.update_capabilities({"ram_gb": -1})
    with pytest.raises(NodeError, match="unknown capability"):
        node.update_capabilities({"ram": 3})
    assert len(list(ledger.stored())) == count
    await node.stop()
    assert len(list(ledger.stored())) == count  # offline silently
    await node.leave()
    assert runner.nodes.describe(ledger.node_id)["status"] == "offline"
    await node.start()  # after leaving, a start joins again
    assert [row.type for row in ledger.stored()].count("node.joined") == 2


async def test_update_before_start_is_recorded_by_the_join() -> None:
    ledger, runner = private_network("bound")
    node = Node("w", "127.0.0.1", 7002, capabilities=seed_caps())
    node.bind(ledger, runner)
    node.update_capabilities({"cpu_score": 4.0})
    assert not [r for r in ledger.stored() if r.type.startswith("node.")]
    await node.start()
    assert runner.nodes.describe(ledger.node_id)["capabilities"]["cpu_milli"] == 4000


async def test_bind_rules() -> None:
    ledger, runner = private_network("bound")
    other, other_runner = private_network("other")
    node = Node("w", "127.0.0.1", 7003, capabilities=seed_caps())
    with pytest.raises(NodeError):
        node.bind(ledger, other_runner)
    node.bind(ledger, runner)
    await node.start()
    with pytest.raises(NodeError, match="running"):
        node.bind(other, other_runner)


# --------------------------------------------------------------------------- peers
async def test_standalone_node_has_no_network() -> None:
    node = await started()
    with pytest.raises(NetworkError, match="no network is attached"):
        await node.connect_to_peer("node-002")
    with pytest.raises(NetworkError):
        await node.disconnect_from_peer("node-002")
    assert node.get_peer_list() == []


async def test_bound_peers_resolve_names_keys_and_reject_unknown() -> None:
    ledger, runner = private_network("peers")
    peers = FakePeers([{"node_id": "b" * 64, "url": "http://127.0.0.1:7102"}])
    assert isinstance(peers, PeerDirectory)
    node = Node("node-001", "127.0.0.1", 7101, capabilities=seed_caps())
    node.bind(ledger, runner, peers=peers)
    with pytest.raises(NodeError, match="not running"):
        await node.connect_to_peer("b" * 64)
    await node.start()
    assert await node.connect_to_peer("b" * 64)
    assert await node.connect_to_peer("http://127.0.0.1:7102")
    assert await node.disconnect_from_peer("b" * 64)
    assert peers.calls == [("connect", "b" * 64), ("connect", "http://127.0.0.1:7102"), ("disconnect", "b" * 64)]
    with pytest.raises(NetworkError, match="unknown peer"):
        await node.connect_to_peer("nonexistent_node")
    with pytest.raises(NetworkError, match="itself"):
        await node.connect_to_peer(node.ledger_id)  # type: ignore[arg-type]
    assert node.get_peer_list() == peers.known


async def test_bound_peer_named_in_the_ledger_resolves_to_its_key() -> None:
    ledger, runner = private_network("peers")
    peers = FakePeers([])
    node = Node("node-001", "127.0.0.1", 7201, capabilities=seed_caps())
    node.bind(ledger, runner, peers=peers)
    await node.start()
    # another key's node.joined, as replication would deliver it, folded into our nodes projection
    nodes = runner.nodes
    nodes.nodes["c" * 64] = {**nodes.nodes[ledger.node_id], "name": "node-002", "url": "http://127.0.0.1:7202"}
    assert await node.connect_to_peer("node-002")
    assert peers.calls == [("connect", "c" * 64)]


async def test_can_run_for_the_execution_engine() -> None:
    node = await started(caps=seed_caps(task_types=["map"]))
    assert node.can_run("map", {"ram_gb": 1.0}) and node.can_run("map", None)
    assert not node.can_run("matrix_ops", {})
    assert not node.can_run("map", {"timeout_seconds": -1})  # malformed foreign task: just do not bid
    assert not node.can_run("map", "junk")  # type: ignore[arg-type]
