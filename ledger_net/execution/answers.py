"""Results as they travel in events, and a task's answer from its chunks' accepted results.

A result small enough rides inline in its event, named by the hash of its frame; a bigger one
is stored as a frame blob naming its own blobs, and the event carries only the frame hash.
Both the worker (reporting a chunk) and the owner (completing a task) write results this way.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..compute import aggregate, aggregate_by_reference, blob_refs, pack, unpack
from ..errors import TaskError
from .blobs import BlobStore
from .framing import encode_frame
from .owner import Attempt, OwnedTask, result_hash

INLINE_LIMIT = 16 * 1024  # payloads and results up to this size travel inside events


def result_body(blobs: BlobStore, wire: Any, result_blobs: dict[str, Any], trusted: bool) -> dict[str, Any]:
    """How a result goes into an event: inline when small (its frame hash names it, nothing
    stored), else as a stored frame naming its blobs."""
    if not result_blobs and not blob_refs(wire) and len(encode_frame({"result": wire})) <= INLINE_LIMIT:
        return {"result_hash": result_hash(wire), "result": wire}
    frame_hash, _ = blobs.put_value(wire, result_blobs, trusted=trusted)
    return {"result_hash": frame_hash}


def accepted_wire(blobs: BlobStore, index: int, attempt: Attempt) -> tuple[Any, dict[str, Any]]:
    """The accepted result of chunk ``index`` in wire form, with the blobs it names."""
    if attempt.result is not None:
        return attempt.result, {}
    found, wire, found_blobs = blobs.local_wire(attempt.result_hash or "")
    if not found:
        raise TaskError(f"result of chunk {index} is not available here")
    return wire, found_blobs


def answer_body(blobs: BlobStore, task: OwnedTask, accepted: dict[int, Attempt]) -> dict[str, Any]:
    """The `task.completed` body (without its refund): the chunks' accepted results aggregated,
    by reference when the task type allows it. Raises when a result is missing or malformed."""
    wires = [accepted_wire(blobs, chunk.index, accepted[chunk.index]) for chunk in task.chunks]
    by_reference = aggregate_by_reference(task.task_type, task.config, [w for w, _ in wires])
    if by_reference is not None:
        return result_body(blobs, by_reference, {}, trusted=True)
    results = [unpack(wire, found, verify=False) for wire, found in wires]
    config = unpack(task.config, local_blobs(blobs, task.config), verify=False)
    answer = aggregate(task.task_type, config, results)
    return result_body(blobs, *pack(answer), trusted=True)


def local_blobs(blobs: BlobStore, wire: Any) -> dict[str, Any]:
    """The blobs ``wire`` names that are stored here."""
    out = {}
    for h in blob_refs(wire):
        data = blobs.local(h)
        if data is not None:
            out[h] = data
    return out


def payload_blobs(payload: Any) -> list[str]:
    """Blobs a chunk needs: those its payload names, and its model file's."""
    refs = blob_refs(payload)
    model = payload.get("model") if isinstance(payload, dict) else None
    if isinstance(model, dict) and isinstance(model.get("model_blob"), str):
        refs.append(model["model_blob"])
    return refs


def unpack_spec(spec_json: str) -> dict[str, Any]:
    """A stored task spec (canonical JSON) with its requirements unpacked."""
    spec = orjson.loads(spec_json)
    return {"config": spec.get("config"), "requirements": unpack(spec.get("requirements") or {})}
