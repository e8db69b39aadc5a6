"""Canonical bytes: the one encoding that is hashed, signed, stored and sent.

Compact UTF-8 JSON with keys sorted by code point, no insignificant whitespace,
no floats, integers within signed 64 bits. Because the bytes that were signed are
the bytes that travel and rest, nothing is ever re-serialised before a check;
`decode` refuses any input that is not already canonical, so two encodings of one
value can never both verify.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from ..errors import EncodingError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 64  # nesting of arrays/objects; deeper input is refused, never recursed into
_OPTIONS = orjson.OPT_SORT_KEYS


def _check(value: Any, path: str = "$", depth: int = 0) -> None:
    """Refuse what has no single canonical form (floats, odd keys, huge ints), and nesting
    deeper than `MAX_DEPTH` (a 1000-deep array must be a clear refusal, not a RecursionError)."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise EncodingError(f"integer at {path} is outside signed 64 bits")
        return
    if (kind is dict or kind is list or kind is tuple) and depth >= MAX_DEPTH:
        raise EncodingError(f"value at {path} is nested deeper than {MAX_DEPTH} levels")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise EncodingError(f"key {key!r} at {path} is not a string")
            _check(item, f"{path}.{key}", depth + 1)
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
        return
    if kind is float:
        raise EncodingError(f"float at {path}: signed content holds integers only")
    raise EncodingError(f"{kind.__name__} at {path} has no canonical encoding")


def canonical_bytes(value: Any) -> bytes:
    """Encode a JSON-like value into its one canonical byte string."""
    _check(value)
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:  # lone surrogates, absurd nesting
        raise EncodingError(f"no canonical encoding: {exc}") from None


def decode(raw: bytes) -> Any:
    """Parse canonical bytes, refusing anything that is not canonical."""
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise EncodingError(f"not valid JSON: {exc}") from None
    if canonical_bytes(value) != raw:
        raise EncodingError("bytes are not in canonical form")
    return value


def digest(raw: bytes) -> bytes:
    """SHA-256 of canonical bytes: the event's identity."""
    return hashlib.sha256(raw).digest()


def content_hash(raw: bytes) -> str:
    """Hex SHA-256 of canonical bytes, as events name each other."""
    return hashlib.sha256(raw).hexdigest()


_HEX64 = re.compile(r"[0-9a-f]{64}").fullmatch


def is_hash(value: Any) -> bool:
    """A SHA-256 digest as the ledger writes it: 64 lower-case hex characters (events, blobs)."""
    return isinstance(value, str) and _HEX64(value) is not None
