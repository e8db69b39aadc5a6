"""Wire form of chunk payloads and results: float-free, 64-bit-safe, blobs by hash.

Signed ledger content allows no floats and no integers beyond 64 bits, yet user
data is full of both. ``pack`` rewrites a JSON-like value so it fits:

* a float becomes ``{"$float": repr(x)}`` (repr round-trips every double exactly);
* an int outside signed 64 bits becomes ``{"$int": hex}``; bytes become ``{"$bytes": base64}``;
* a rectangular list of only floats or only ints with at least ``min_blob_items``
  numbers becomes ``{"$blob": name}``, its bytes (:mod:`blobs`) returned aside;
* a numeric numpy array becomes ``{"$array": name}`` (a blob, when it has at least
  ``min_blob_items`` entries), ``{"$array": [name, first_row, end_row]}`` when it is a
  run of rows of an array already packed by the same :class:`Packer` (chunks of one
  matrix name the task's operand instead of copying it), or
  ``{"$array": {"dtype", "shape", "data"}}`` inline when small;
* ``{"$concat": [array, ...]}`` is the arrays joined along their first axis: how a
  row-split answer names its chunks' result blobs instead of being hashed again;
* a user dict with a key starting with ``$`` is wrapped as ``{"$dict": {...}}``.

``unpack(pack(x)) == x`` with types preserved (ints stay ints, floats floats, arrays
arrays: an array unpacks as a read-only view of its blob, no copy).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import TaskError
from .blobs import ArrayBlob, blob_hash, decode_array, encode_array, fetch_blob

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_MIN_BLOB_ITEMS = 64
PARALLEL_HASH_BYTES = 1 << 20
_HASHERS = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="ledger-hash")


def _leaves(value: Any) -> list[Any]:
    out: list[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            out.append(v)
    return out


def _as_blob(value: list[Any], min_items: int) -> np.ndarray | None:
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


class Packer:
    """Packs values for one task, remembering the arrays it made blobs of.

    A later array that is a run of rows of one of them (``a[i:j]`` of a C-ordered
    array) is named by reference, so a matrix split into row blocks costs one blob.
    """

    def __init__(self, min_blob_items: int = DEFAULT_MIN_BLOB_ITEMS,
                 store: Callable[[ArrayBlob], str] | None = None) -> None:
        """``store``, when given, keeps a big array blob and returns its hash (e.g. hashing while
        writing it to disk); otherwise big blobs are only hashed and handed back by ``pack``."""
        self.min_blob_items = min_blob_items
        self.store = store
        self.blobs: dict[str, Any] = {}
        self._arrays: list[tuple[np.ndarray, str]] = []
        self._prepared: dict[int, tuple[np.ndarray, ArrayBlob]] = {}  # id -> (array, hashed blob)

    def pack(self, value: Any) -> tuple[Any, dict[str, Any]]:
        """``(wire_value, blobs named by it)``; see the module docstring."""
        self._hash_big_arrays(value)
        before = set(self.blobs)
        wire = self._go(value, "$")
        named = set(blob_refs(wire))
        return wire, {h: b for h, b in self.blobs.items() if h in named or h not in before}

    def _hash_big_arrays(self, value: Any) -> None:
        """Hash a value's big arrays side by side (hashlib releases the GIL): two 32 MiB
        operands cost one hash's time, not two."""
        found: list[np.ndarray] = []
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, (list, tuple)) and len(v) <= 64:
                stack.extend(v)
            elif isinstance(v, np.ndarray) and v.nbytes >= PARALLEL_HASH_BYTES and v.dtype.kind in "biuf" \
                    and id(v) not in self._prepared and self._rows_of_known(v) is None:
                found.append(v)
        if len(found) < 2:
            return
        blobs = [ArrayBlob(v) for v in found]
        list(_HASHERS.map(self._keep, blobs))
        for v, blob in zip(found, blobs, strict=False):
            self._prepared[id(v)] = (v, blob)

    def _keep(self, blob: ArrayBlob) -> str:
        if self.store is not None and blob._hash is None and len(blob) >= PARALLEL_HASH_BYTES:
            blob._hash = self.store(blob)
        return blob.digest()

    def _array(self, arr: np.ndarray, where: str) -> Any:
        if arr.dtype.kind not in "biuf" or arr.ndim == 0:
            return self._go(arr.tolist(), where)
        ref = self._rows_of_known(arr)
        if ref is not None:
            return {"$array": ref}
        if self.min_blob_items <= 0 or arr.size < self.min_blob_items:
            return {"$array": {"dtype": arr.dtype.newbyteorder("<").str, "shape": list(arr.shape),
                               "data": self._go(arr.reshape(-1).tolist(), where)}}
        prepared = self._prepared.pop(id(arr), None)
        blob = prepared[1] if prepared is not None and prepared[0] is arr else ArrayBlob(arr)
        name = self._keep(blob)
        self.blobs.setdefault(name, blob)
        if blob.array.flags.c_contiguous and blob.array.ndim >= 1:
            self._arrays.append((blob.array, name))
        return {"$array": name}

    def _rows_of_known(self, arr: np.ndarray) -> str | list[Any] | None:
        if arr.ndim < 1 or not arr.flags.c_contiguous:
            return None
        start = arr.__array_interface__["data"][0]
        for known, name in self._arrays:
            if known.dtype != arr.dtype or known.shape[1:] != arr.shape[1:] or known.shape[0] == 0:
                continue
            row_bytes = known.strides[0]
            offset = start - known.__array_interface__["data"][0]
            if row_bytes <= 0 or offset < 0 or offset % row_bytes:
                continue
            first = offset // row_bytes
            if first + arr.shape[0] <= known.shape[0]:
                if first == 0 and arr.shape[0] == known.shape[0]:
                    return name
                return [name, int(first), int(first + arr.shape[0])]
        return None

    def _go(self, v: Any, where: str) -> Any:
        if v is None or type(v) is bool:
            return v
        if isinstance(v, str):
            return str(v)  # plain str, also for StrEnum members
        if isinstance(v, (bytes, bytearray, memoryview)):
            return {"$bytes": base64.b64encode(bytes(v)).decode("ascii")}
        if isinstance(v, np.ndarray):
            return self._array(v, where)
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool):
            return bool(v)
        if isinstance(v, int):
            v = int(v)  # plain int, also for IntEnum members
            return v if INT64_MIN <= v <= INT64_MAX else {"$int": hex(v)}
        if isinstance(v, float):
            return {"$float": repr(v)}
        if isinstance(v, (list, tuple)):
            arr = _as_blob(list(v), self.min_blob_items) if self.min_blob_items > 0 else None
            if arr is not None:
                data = encode_array(arr)
                ref = blob_hash(data)
                self.blobs[ref] = data
                return {"$blob": ref}
            return [self._go(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise TaskError(f"key {k!r} at {where} is not a string")
                out[k] = self._go(x, f"{where}.{k}")
            return {"$dict": out} if any(k.startswith("$") for k in out) else out
        raise TaskError(f"{type(v).__name__} at {where} cannot travel in a payload")


def pack(value: Any, min_blob_items: int = DEFAULT_MIN_BLOB_ITEMS) -> tuple[Any, dict[str, Any]]:
    """Return ``(wire_value, blobs)``; see the module docstring for the rules."""
    return Packer(min_blob_items).pack(value)


def _unpack_array(inner: Any, blobs: Mapping[str, Any] | None, verify: bool) -> np.ndarray:
    if isinstance(inner, str):
        return decode_array(fetch_blob(inner, blobs, verify), copy=False)
    if (isinstance(inner, list) and len(inner) == 3 and isinstance(inner[0], str)
            and all(type(x) is int for x in inner[1:])):
        whole = decode_array(fetch_blob(inner[0], blobs, verify), copy=False)
        first, end = inner[1], inner[2]
        if whole.ndim < 1 or not 0 <= first <= end <= whole.shape[0]:
            raise TaskError(f"rows {first}..{end} are outside blob {inner[0][:16]}… of shape {whole.shape}")
        return whole[first:end]
    if isinstance(inner, dict) and set(inner) == {"dtype", "shape", "data"}:
        try:
            dtype = np.dtype(inner["dtype"])
            if dtype.kind not in "biuf":
                raise TypeError(f"dtype {dtype} is not numeric")
            return np.asarray(unpack(inner["data"]), dtype=dtype).reshape(tuple(inner["shape"]))
        except (TypeError, ValueError) as exc:
            raise TaskError(f"malformed inline array: {exc}") from None
    raise TaskError(f"malformed $array reference {str(inner)[:60]!r}")


def unpack(value: Any, blobs: Mapping[str, Any] | None = None, verify: bool = True) -> Any:
    """Inverse of :func:`pack`; blob references are fetched from ``blobs`` and hash-checked
    (``verify=False`` only for a mapping already checked, see :func:`fetch_blob`)."""
    if isinstance(value, list):
        return [unpack(v, blobs, verify) for v in value]
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
            return decode_array(fetch_blob(inner, blobs, verify), copy=False).tolist()
        if tag == "$array":
            return _unpack_array(inner, blobs, verify)
        if tag == "$concat" and isinstance(inner, list) and inner:
            parts = [unpack(v, blobs, verify) for v in inner]
            if not all(isinstance(p, np.ndarray) and p.ndim >= 1 for p in parts):
                raise TaskError("$concat joins arrays only")
            try:
                return np.concatenate(parts)
            except ValueError as exc:
                raise TaskError(f"$concat parts do not fit together: {exc}") from None
        if tag == "$dict":
            return {k: unpack(v, blobs, verify) for k, v in inner.items()}
    return {k: unpack(v, blobs, verify) for k, v in value.items()}


def rename_refs(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with each blob reference found in ``names`` replaced by its new name: how a node
    names the result files its sandboxed worker left unnamed, once it has hashed them itself."""
    if isinstance(value, list):
        return [rename_refs(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and isinstance(value.get("$blob"), str):
        return {"$blob": names.get(value["$blob"], value["$blob"])}
    if len(value) == 1 and "$array" in value:
        inner = value["$array"]
        if isinstance(inner, str):
            return {"$array": names.get(inner, inner)}
        if isinstance(inner, list) and inner and isinstance(inner[0], str):
            return {"$array": [names.get(inner[0], inner[0]), *inner[1:]]}
        return value
    return {k: rename_refs(v, names) for k, v in value.items()}


def blob_refs(value: Any) -> list[str]:
    """Every blob hash a wire value refers to, in first-seen order (for ``task.submitted.blobs``)."""
    seen: dict[str, None] = {}
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            if len(v) == 1 and "$blob" in v and isinstance(v["$blob"], str):
                seen.setdefault(v["$blob"])
            elif len(v) == 1 and "$array" in v:
                inner = v["$array"]
                if isinstance(inner, str):
                    seen.setdefault(inner)
                elif isinstance(inner, list) and inner and isinstance(inner[0], str):
                    seen.setdefault(inner[0])
            elif len(v) == 1 and isinstance(v.get("$concat"), list):
                stack.extend(reversed(v["$concat"]))
            elif len(v) == 1 and isinstance(v.get("$dict"), dict):
                stack.extend(reversed(list(v["$dict"].values())))
            else:
                stack.extend(reversed(list(v.values())))
    return list(seen)
