"""Pure compute of every task type: split a task into chunk payloads, run a chunk, aggregate.

No I/O besides reading a named model file, no ledger, no network: the execution
consumer calls these and puts the (wire-packed) payloads and results into events.
"""

from .blobs import ArrayBlob, blob_hash, decode_array, encode_array
from .plan import MAX_CHUNKS, TASK_TYPES, payload_work_units, plan_chunks, validate_config
from .runner import aggregate, aggregate_by_reference, run_chunk
from .wire import Packer, blob_refs, pack, rename_refs, unpack

__all__ = [
    "MAX_CHUNKS",
    "TASK_TYPES",
    "aggregate",
    "aggregate_by_reference",
    "ArrayBlob",
    "blob_hash",
    "blob_refs",
    "decode_array",
    "encode_array",
    "Packer",
    "pack",
    "payload_work_units",
    "plan_chunks",
    "rename_refs",
    "run_chunk",
    "unpack",
    "validate_config",
]
