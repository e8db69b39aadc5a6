"""The seed's Task API: its example, serialisation, validation, chunks and cost."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from ledger_net.compute import run_chunk
from ledger_net.core.task import Chunk, Task, TaskPriority, TaskStatus, TaskType
from ledger_net.errors import TaskError

REQ = {"cpu_percent": 50.0, "ram_gb": 0.5, "timeout_seconds": 30}


# The seed's Task example (api-reference.ru.md, "Задачи (Task) / Пример использования"),
# with `from src.` read as `from ledger_net.`.
async def task_example():
    task = Task.create_range_reduce(
        owner_id="user-001",
        start=1,
        end=10000,
        operation="sum",
        requirements={
            "cpu_percent": 25.0,
            "ram_gb": 1.0,
            "timeout_seconds": 60,
            "max_price": 0.05
        },
        config={
            "priority": TaskPriority.NORMAL.value,
            "chunk_size": 1000
        }
    )

    print(f"🆔 Задача создана: {task.task_id}")
    print(f"📊 Тип: {task.task_type}")
    print(f"💰 Оценка стоимости: {task.estimate_cost(0.8):.4f}")

    errors = task.validate()
    if errors:
        print(f"❌ Ошибки валидации: {errors}")
    else:
        print("✅ Задача валидна")

    chunks = task.create_chunks(chunk_size=2000)
    print(f"🔢 Создано чанков: {len(chunks)}")

    task_dict = task.to_dict()
    print(f"📄 Размер словаря: {len(task_dict)} полей")
    return task


def test_seed_task_example_prints_what_it_should(capsys):
    task = asyncio.run(task_example())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"🆔 Задача создана: {task.task_id}" and task.task_id.startswith("task-")
    assert lines[1] == "📊 Тип: range_reduce"
    # 10 chunks of the config's 1000 -> 10 * 0.001 + 10_000 units / 1e9; x1.0 NORMAL; x1.3 at reputation 0.8
    assert lines[2] == "💰 Оценка стоимости: 0.0130"
    assert lines[3] == "✅ Задача валидна"
    assert lines[4] == "🔢 Создано чанков: 5"
    assert lines[5] == "📄 Размер словаря: 7 полей"
    assert task.aggregate_results([run_chunk("range_reduce", c.payload) for c in task.create_chunks(2000)]) \
        == 10000 * 10001 // 2


def test_enums_are_what_the_seed_compares_against():
    assert TaskStatus.COMPLETED == "completed" and TaskStatus.FAILED == "failed"
    assert {s.value for s in TaskStatus} == {"pending", "quoted", "assigned", "running", "completed",
                                             "failed", "cancelled"}
    assert TaskStatus.BIDDING is TaskStatus.QUOTED
    assert TaskStatus.CANCELLED.is_terminal and not TaskStatus.RUNNING.is_terminal
    assert TaskPriority.LOW < TaskPriority.NORMAL < TaskPriority.HIGH < TaskPriority.CRITICAL
    assert f"{TaskType.MATRIX_OPS}" == "matrix_ops"


def _all_kinds():
    return [
        Task.create_range_reduce("u", -5, 50, "variance", REQ, {"chunk_size": 7}),
        Task.create_map("u", [1, 2.5, [3, 4]], "square", REQ, {"priority": TaskPriority.HIGH.value}),
        Task.create_map_reduce("u", [1, 2, 3], "double", "sum", REQ, {}),
        Task.create_matrix_ops("u", [[1, 2], [3, 4]], [[5, 6], [7, 8]], "multiply", REQ, {}),
        Task.create_ml_inference("u", "m.npz", {"inputs": [[1.0, 2.0]]}, REQ, {"return_probabilities": True}),
        Task.create_ml_train_step("u", "m.npz", {"X": [[1.0]], "y": [0]}, REQ, {"learning_rate": 0.1}),
        Task.create_code("u", {"entrypoint": "main.py", "source": "print(1)"}, REQ, {}),
    ]


@pytest.mark.parametrize("task", _all_kinds(), ids=lambda t: t.task_type.value)
def test_to_dict_from_dict_round_trip(task):
    d = task.to_dict()
    assert json.loads(json.dumps(d)) == d  # JSON-like all the way down
    again = Task.from_dict(d)
    assert again == task and again.to_dict() == d
    assert again.priority is task.priority and again.status is TaskStatus.PENDING


def test_from_dict_takes_the_seeds_hand_written_shape():
    task = Task.from_dict({"task_type": "range_reduce", "owner_id": "user-001", "requirements": {},
                           "config": {"start": 1, "end": 1000, "operation": "sum"}})
    assert task.validate() == [] and task.task_id.startswith("task-")
    assert task.priority is TaskPriority.NORMAL
    assert task.run_locally() == 500500
    top = Task.from_dict({"task_type": "map", "owner_id": "u", "data": [1, 2], "operation": "negate"})
    assert top.run_locally() == [-1, -2]


def test_from_dict_refuses_unknown_types_and_junk():
    with pytest.raises(TaskError, match="unknown task type 'invalid_type'"):
        Task.from_dict({"task_type": "invalid_type", "owner_id": "user-001", "requirements": {}, "config": {}})
    with pytest.raises(TaskError):
        Task.from_dict({"owner_id": "x"})
    with pytest.raises(TaskError):
        Task.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="status"):
        Task.from_dict({**_all_kinds()[0].to_dict(), "status": "sleeping"})


def test_ids_are_unique_unless_given():
    ids = {Task.create_map("u", [1], "square", {}, {}).task_id for _ in range(50)}
    assert len(ids) == 50
    assert Task("t-1", "u", TaskType.MAP, {}, {"data": [1], "operation": "square"}).task_id == "t-1"


@pytest.mark.parametrize("make, needle", [
    (lambda: Task.create_range_reduce("u", 1, 10, "frobnicate", REQ, {}), "unknown reduce operation"),
    (lambda: Task.create_range_reduce("u", 10, 1, "sum", REQ, {}), "before start"),
    (lambda: Task.create_range_reduce("u", 1.5, 3, "sum", REQ, {}), "must be an integer"),
    (lambda: Task.create_map("u", [1], "teleport", REQ, {}), "unknown map operation"),
    (lambda: Task.create_map("u", [], "square", REQ, {}), "data is empty"),
    (lambda: Task.create_map_reduce("u", [1], "square", "median-ish", REQ, {}), "unknown reduce operation"),
    (lambda: Task.create_matrix_ops("u", [[1, 2], [3]], [[1]], "add", REQ, {}), "ragged"),
    (lambda: Task.create_matrix_ops("u", [[1, 2]], [[1, 2]], "multiply", REQ, {}), "shape mismatch"),
    (lambda: Task.create_matrix_ops("u", [[1, 2]], [[1], [2]], "add", REQ, {}), "shape mismatch"),
    (lambda: Task.create_matrix_ops("u", [[1, 2]], None, "inverse", REQ, {}), "square"),
    (lambda: Task.create_matrix_ops("u", [[1, "x"]], None, "transpose", REQ, {}), "not a number"),
    (lambda: Task.create_map("u", [1], "square", {"timeout_seconds": -5}, {}), "timeout_seconds"),
    (lambda: Task.create_map("u", [1], "square", {"cpu_percent": 250}, {}), "cpu_percent"),
    (lambda: Task.create_map("u", [1], "square", {"max_price": -1}, {}), "max_price"),
    (lambda: Task.create_map("u", [1], "square", REQ, {"priority": 9}), "bad priority"),
    (lambda: Task.create_map("u", [1], "square", REQ, {"chunk_size": 0}), "chunk_size"),
    (lambda: Task.create_ml_inference("u", "", {"inputs": [[1]]}, REQ, {}), "model"),
    (lambda: Task.create_ml_inference("u", "m.npz", None, REQ, {}), "input_data"),
    (lambda: Task.create_ml_train_step("u", "m.npz", {"X": [[1], [2]], "y": [0]}, REQ, {}), "one target per row"),
    (lambda: Task.create_ml_train_step("u", "m.npz", {"X": [[1]], "y": [0]}, REQ, {"learning_rate": -1}),
     "learning_rate"),
    (lambda: Task.create_code("u", {"source": "x"}, REQ, {}), "entrypoint"),
    (lambda: Task.create_map("", [1], "square", REQ, {}), "owner_id"),
])
def test_validate_names_each_error(make, needle):
    errors = make().validate()
    assert errors and any(needle in e for e in errors), errors


def test_valid_tasks_have_no_errors():
    for task in _all_kinds():
        assert task.validate() == [], task


def test_priority_accepts_members_values_and_names():
    assert Task("t", "u", "map", {}, {}, TaskPriority.HIGH).priority is TaskPriority.HIGH
    assert Task("t", "u", "map", {}, {"priority": 4}).priority is TaskPriority.CRITICAL
    assert Task("t", "u", "map", {}, {}, "low").priority is TaskPriority.LOW


def test_estimate_cost_is_deterministic_and_moves_the_right_way():
    small = Task.create_range_reduce("u", 1, 1000, "sum", REQ, {})
    big = Task.create_range_reduce("u", 1, 10**7, "sum", REQ, {"chunk_size": 10**5})
    urgent = Task.create_range_reduce("u", 1, 1000, "sum", REQ, {"priority": TaskPriority.CRITICAL.value})
    assert small.estimate_cost(0.5) == small.estimate_cost(0.5) == 0.001001
    assert small.estimate_cost(0.2) < small.estimate_cost(0.9)
    assert small.estimate_cost(0.5) < big.estimate_cost(0.5)
    assert small.estimate_cost(0.5) < urgent.estimate_cost(0.5)
    assert isinstance(small.estimate_cost_micros(0.5), int)
    with pytest.raises(TaskError):
        small.estimate_cost(float("nan"))
    mm = Task.create_matrix_ops("u", np.ones((50, 40)), np.ones((40, 30)), "multiply", REQ, {})
    assert mm.work_units() == 50 * 40 * 30


def test_chunks_and_their_requirements():
    task = Task.create_range_reduce("u", 1, 10, "sum", REQ, {})
    chunks = task.create_chunks(chunk_size=3)
    assert [(c.payload["start"], c.payload["end"]) for c in chunks] == [(1, 3), (4, 6), (7, 9), (10, 10)]
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert all(c.task_id == task.task_id and c.chunk_id == f"{task.task_id}:{c.index}" for c in chunks)
    req = task.get_chunk_requirements(chunks[3].chunk_id)
    assert req["work_units"] == 1 and req["timeout_seconds"] == 30
    assert Chunk.from_dict(json.loads(json.dumps(chunks[0].to_dict()))) == chunks[0]
    with pytest.raises(TaskError, match="no chunk"):
        task.get_chunk_requirements("elsewhere:0")
    # config's chunk_size is the default; the number of chunks stays bounded
    assert len(Task.create_range_reduce("u", 1, 100, "sum", REQ, {"chunk_size": 10}).create_chunks()) == 10
    assert len(Task.create_range_reduce("u", 1, 10**12, "sum", REQ, {"chunk_size": 1}).create_chunks()) <= 10_000


def test_create_chunks_refuses_invalid_tasks():
    with pytest.raises(TaskError, match="before start"):
        Task.create_range_reduce("u", 5, 1, "sum", REQ, {}).create_chunks()


def test_aggregate_results_accepts_an_index_mapping():
    task = Task.create_map("u", list(range(10)), "square", REQ, {})
    chunks = task.create_chunks(4)
    by_index = {c.index: run_chunk("map", c.payload) for c in reversed(chunks)}
    assert task.aggregate_results(by_index) == [i * i for i in range(10)]
    with pytest.raises(TaskError, match="missing chunks"):
        task.aggregate_results({0: by_index[0], 2: by_index[2]})


def test_seed_basic_and_batch_examples_compute_real_answers():
    basic = Task.create_range_reduce("node", 1, 1000, "sum", {"timeout_seconds": 30},
                                     {"max_price": 0.1, "priority": TaskPriority.NORMAL.value})
    assert basic.run_locally() == 500500 and type(basic.run_locally()) is int
    data = np.random.default_rng(1).random((3000, 100))
    results = []
    for i, batch in enumerate(data[j:j + 1000] for j in range(0, 3000, 1000)):
        task = Task.create_map("node", batch.tolist(), "mean", {"timeout_seconds": 60},
                               {"max_price": 0.2, "batch_id": i})
        results.append(task.run_locally())
    assert all(len(r) == 1000 for r in results)
    np.testing.assert_allclose(results[0], data[:1000].mean(axis=1), rtol=1e-12)
    final = np.mean(results, axis=0)  # what the seed does with the task results
    np.testing.assert_allclose(final, data.mean(axis=1).reshape(3, 1000).mean(axis=0), rtol=1e-12)


def test_seed_ml_example_fails_with_a_clear_reason():
    task = Task.create_ml_inference(
        "node", "models/resnet50.h5",
        {"image_data": "base64_encoded_image", "preprocessing": {"normalize": True, "resize": (224, 224)}},
        {"cpu_percent": 30.0, "ram_gb": 4.0, "gpu_percent": 80.0, "timeout_seconds": 120},
        {"max_price": 1.0, "priority": TaskPriority.HIGH.value, "return_probabilities": True})
    assert task.validate() == []
    assert json.loads(json.dumps(task.to_dict()))["config"]["input_data"]["preprocessing"]["resize"] == [224, 224]
    (chunk,) = task.create_chunks()
    with pytest.raises(TaskError, match=r"unsupported model format '\.h5'.*\.npz"):
        run_chunk("ml_inference", chunk.payload)


def _plain_json(value):
    """Only exact JSON types (no enum members, tuples or numpy scalars) and no floats."""
    if type(value) in (list, dict):
        items = value.values() if type(value) is dict else value
        return all(type(k) is str for k in (value if type(value) is dict else [])) and all(map(_plain_json, items))
    return value is None or type(value) in (str, bool, int)


@pytest.mark.parametrize("task", _all_kinds(), ids=lambda t: t.task_type.value)
def test_to_dict_packs_into_signable_content(task):
    from ledger_net.compute import pack, unpack

    task.config["priority"] = TaskPriority.HIGH  # an enum member slipped in after construction
    task.config["numpy"] = np.arange(3)
    wire, blobs = pack(task.to_dict())
    assert _plain_json(wire)
    back = Task.from_dict(unpack(wire, blobs)).config["numpy"]
    if task.task_type == TaskType.MATRIX_OPS:  # matrix operands stay arrays end to end
        assert isinstance(back, np.ndarray) and back.dtype == np.int64 and back.tolist() == [0, 1, 2]
    else:
        assert back == [0, 1, 2]


def test_numpy_matrix_operands_stay_arrays_and_chunks_name_one_blob():
    from ledger_net.compute import Packer, plan_chunks, run_chunk, unpack

    rng = np.random.default_rng(7)
    a, b = rng.random((40, 30)), rng.random((30, 20))
    task = Task.create_matrix_ops("owner", a, b, "multiply", {}, {"chunk_size": 15})
    assert task.config["matrix_a"] is a and task.validate() == []
    packer = Packer()
    wire_config, config_blobs = packer.pack(task.config)
    assert len(config_blobs) == 2  # A and B, each once
    payloads = plan_chunks("matrix_ops", task.config, 15)
    wires = [packer.pack(p) for p in payloads]
    assert all(set(blobs) <= set(config_blobs) for _, blobs in wires)  # row blocks name A's blob
    assert wires[1][0]["a"] == {"$array": [wire_config["matrix_a"]["$array"], 15, 30]}
    results = [run_chunk("matrix_ops", unpack(w, config_blobs)) for w, _ in wires]
    answer = task.aggregate_results(results)
    assert isinstance(answer, np.ndarray) and answer.shape == (40, 20)
    # Row blocks and the whole product may take different BLAS kernels, which differ in the last
    # bits: equal within the standard bound for a dot product of length k, |err| <= k * eps * (|A||B|).
    bound = 30 * np.finfo(np.float64).eps * (np.abs(a) @ np.abs(b))
    assert np.all(np.abs(answer - a @ b) <= bound)
    with pytest.raises(TaskError, match="NaN or infinity"):
        bad = a.copy()
        bad[3, 4] = np.nan
        Task.create_matrix_ops("owner", bad, b, "multiply", {}, {}).create_chunks()
    problems = Task.create_matrix_ops("o", np.arange(4.0), b, "multiply", {}, {}).validate()
    assert "matrix_a must be a matrix" in problems[0]


def test_code_task_takes_a_real_code_bundle_and_packs_its_bytes():
    from ledger_net.compute import pack, unpack
    from ledger_net.sandbox.bundle import CodeBundle

    bundle = CodeBundle(entrypoint="main.wasm", files={"main.wasm": b"\0asm\x01\0\0\0"}, args=["x"])
    task = Task.create_code("u", bundle, REQ, {})
    assert task.validate() == []
    (chunk,) = task.create_chunks()
    wire, blobs = pack(chunk.payload)
    assert _plain_json(wire)
    assert unpack(wire, blobs)["bundle"]["files"]["main.wasm"] == b"\0asm\x01\0\0\0"
    with pytest.raises(TaskError, match="sandbox"):
        run_chunk("code", chunk.payload)
    assert task.aggregate_results([{"stdout": "3\n"}]) == {"stdout": "3\n"}
