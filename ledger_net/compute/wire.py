"""Wire form of chunk payloads and results: float-free, 64-bit-safe, blobs by hash.

Signed ledger content allows no floats and no integers beyond 64 bits, yet user
data is full of both. ``pack`` rewrites a JSON-like value so it fits:

* a float becomes ``{"$float": repr(x)}`` (repr round-trips every double exactly);
* an int outside signed 64 bits becomes ``{"$int": hex}``; bytes become ``{"$bytes": base64}``;
* a rectangular list of only floats or only ints with at least ``min_blob_items``
  numbers becomes ``{"$blob": sha256}``, its bytes (:mod:`blobs`) returned aside;
* a user dict with a key starting with ``$`` is wrapped as ``{"$dict": {...}}``.

``unpack(pack(x)) == x`` with types preserved (ints stay ints, floats floats).
"""

from __future__ import annotations

import base64
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from ..errors import TaskError
from .blobs import blob_hash, decode_array, encode_array, fetch_blob

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_MIN_BLOB_ITEMS = 64


def _leaves(value: Any) -> list:
    out: list = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            out.append(v)
    return out


def _as_blob(value: list, min_items: int) -> np.ndarray | None:
    """The list as an array when it is big, rectangular and of one number type."""
    try:
        arr = np.asarray(value)
    except (ValueError, OverflowError, TypeError):
        return None
    if arr.size < min_items or arr.dtype.kind not in "if" or arr.ndim == 0:
        return None
    want = float if arr.dtype.kind == "f" else int
    if not all(type(x) is want for x in _leaves(value)):
        return None  # mixed ints/floats, bools or numpy scalars: keep their exact types inline
    return arr


def pack(value: Any, min_blob_items: int = DEFAULT_MIN_BLOB_ITEMS) -> Tuple[Any, Dict[str, bytes]]:
    """Return ``(wire_value, blobs)``; see the module docstring for the rules."""
    blobs: Dict[str, bytes] = {}

    def go(v: Any, where: str) -> Any:
        if v is None or type(v) is bool:
            return v
        if isinstance(v, str):
            return str(v)  # plain str, also for StrEnum members
        if isinstance(v, (bytes, bytearray, memoryview)):
            return {"$bytes": base64.b64encode(bytes(v)).decode("ascii")}
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool):
            return bool(v)
        if isinstance(v, int):
            v = int(v)  # plain int, also for IntEnum members
            return v if INT64_MIN <= v <= INT64_MAX else {"$int": hex(v)}
        if isinstance(v, float):
            return {"$float": repr(v)}
        if isinstance(v, (list, tuple)):
            arr = _as_blob(list(v), min_blob_items) if min_blob_items > 0 else None
            if arr is not None:
                data = encode_array(arr)
                ref = blob_hash(data)
                blobs[ref] = data
                return {"$blob": ref}
            return [go(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise TaskError(f"key {k!r} at {where} is not a string")
                out[k] = go(x, f"{where}.{k}")
            return {"$dict": out} if any(k.startswith("$") for k in out) else out
        raise TaskError(f"{type(v).__name__} at {where} cannot travel in a payload")

    return go(value, "$"), blobs


def unpack(value: Any, blobs: Mapping[str, bytes] | None = None) -> Any:
    """Inverse of :func:`pack`; blob references are fetched from ``blobs`` and hash-checked."""
    if isinstance(value, list):
        return [unpack(v, blobs) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$float":
            return float(inner)
        if tag == "$int":
            return int(inner, 16)
        if tag == "$bytes":
            return base64.b64decode(inner, validate=True)
        if tag == "$blob":
            return decode_array(fetch_blob(inner, blobs)).tolist()
        if tag == "$dict":
            return {k: unpack(v, blobs) for k, v in inner.items()}
    return {k: unpack(v, blobs) for k, v in value.items()}


def blob_refs(value: Any) -> list[str]:
    """Every blob hash a wire value refers to, in first-seen order (for ``task.submitted.blobs``)."""
    seen: Dict[str, None] = {}
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            if len(v) == 1 and "$blob" in v and isinstance(v["$blob"], str):
                seen.setdefault(v["$blob"])
            elif len(v) == 1 and isinstance(v.get("$dict"), dict):
                stack.extend(reversed(list(v["$dict"].values())))
            else:
                stack.extend(reversed(list(v.values())))
    return list(seen)
