"""Run one chunk, and fold chunk results into a task's answer.

Both are pure functions of their arguments (plus a model file, for ML tasks that
name one by path), so any worker that runs a chunk reports the same result and
any peer that aggregates the same results reaches the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TaskError
from .matrices import aggregate_matrix, rows_by_reference, run_matrix_chunk
from .ml import apply_step, decode_inputs, default_loss, infer, load_model, train_shard
from .operations import map_values
from .plan import TASK_TYPES, model_spec
from .ranges import range_partial
from .reductions import finish_partial, merge_partials, partial_reduce
from .wire import unpack

Blobs = Mapping[str, Any] | None
ChunkResults = Sequence[Any] | Mapping[int, Any]


def run_chunk(task_type: str, payload: Mapping[str, Any], blobs: Blobs = None, verify: bool = True) -> Any:
    """Execute one chunk for real and return its (JSON-like) result.

    ``payload`` may be in wire form (see :mod:`wire`); blob references are resolved
    from ``blobs`` (hash -> bytes) and checked against their hashes (``verify=False``
    where the node already checked them). Results of reductions are partial states,
    to be merged by :func:`aggregate`.
    """
    p = unpack(dict(payload), blobs, verify)
    if task_type == "range_reduce":
        return range_partial(p.get("operation"), p.get("start"), p.get("end"))
    if task_type == "map":
        return map_values(p.get("operation"), _list(p, "data"), int(p.get("offset", 0)))
    if task_type == "map_reduce":
        mapped = map_values(p.get("map_operation"), _list(p, "data"), int(p.get("offset", 0)))
        return partial_reduce(p.get("reduce_operation"), mapped, "mapped data")
    if task_type == "matrix_ops":
        return run_matrix_chunk(p)
    if task_type == "ml_inference":
        model = load_model(p.get("model") or {}, blobs)
        return infer(model, decode_inputs(p.get("input_data")), bool(p.get("return_probabilities", True)))
    if task_type == "ml_train_step":
        model = load_model(p.get("model") or {}, blobs)
        return train_shard(model, p.get("X"), p.get("y"), p.get("loss") or default_loss(model))
    if task_type == "code":
        raise TaskError("code chunks run user code: hand them to a sandbox executor "
                        "(ledger_net.sandbox.execution), not to the pure compute functions")
    raise TaskError(f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")


def _list(payload: Mapping[str, Any], key: str) -> list[Any]:
    value = payload.get(key)
    if not isinstance(value, (list, tuple)):
        raise TaskError(f"chunk payload {key!r} must be a list, got {type(value).__name__}")
    return list(value)


def _ordered(chunk_results: ChunkResults) -> list[Any]:
    if isinstance(chunk_results, Mapping):
        keys = sorted(chunk_results)
        if keys != list(range(len(keys))):
            raise TaskError(f"chunk results are missing chunks: have indices {keys[:10]}…")
        return [chunk_results[k] for k in keys]
    return list(chunk_results)


def aggregate_by_reference(task_type: str, config: Mapping[str, Any], result_wires: Sequence[Any]) -> Any:
    """The answer in wire form built from the chunk results' wire forms alone, when the type
    allows it (row-split matrix answers: see :func:`rows_by_reference`); None otherwise, and
    the caller aggregates values with :func:`aggregate`."""
    if task_type == "matrix_ops":
        operation: Any = config.get("operation")  # a validated config names one; None is refused below
        return rows_by_reference(operation, result_wires)
    return None


def aggregate(task_type: str, config: Mapping[str, Any], chunk_results: ChunkResults, blobs: Blobs = None) -> Any:
    """The task's final answer from its chunk results (a list in chunk order, or index -> result)."""
    results = [unpack(r, blobs) for r in _ordered(chunk_results)]
    if not results:
        raise TaskError(f"{task_type}: no chunk results to aggregate")
    op: Any  # the config was validated; a missing name is refused by the operation's own check
    if task_type == "range_reduce":
        op = config.get("operation")
        return finish_partial(op, merge_partials(op, results))
    if task_type == "map_reduce":
        op = config.get("reduce_operation")
        return finish_partial(op, merge_partials(op, results))
    if task_type == "map":
        return [x for part in results for x in part]
    if task_type == "matrix_ops":
        op = config.get("operation")
        return aggregate_matrix(op, results)
    if task_type == "ml_inference":
        out: dict[str, Any] = {"predictions": [x for r in results for x in r["predictions"]]}
        probs = [r.get("probabilities") for r in results]
        out["probabilities"] = None if any(p is None for p in probs) else [x for p in probs for x in p]
        if all("labels" in r for r in results):
            out["labels"] = [x for r in results for x in r["labels"]]
        return out
    if task_type == "ml_train_step":
        model = load_model(model_spec(config), blobs)
        lr = float(config.get("learning_rate", 0.1))
        return apply_step(model, results, lr)
    if task_type == "code":
        return results[0] if len(results) == 1 else results
    raise TaskError(f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
