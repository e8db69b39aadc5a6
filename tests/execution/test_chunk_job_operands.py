"""A warm worker's operand maps (``chunk_job._map_files``): the next chunk of the same task reuses
B's map and its finiteness check (``matrices.FINITE``); a NaN is still refused every time, and a
new file is mapped and checked afresh."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ledger_net.blob_names import name_of
from ledger_net.compute.blobs import ArrayBlob
from ledger_net.execution import chunk_job
from ledger_net.execution.framing import decode_frame, encode_frame


def _file(tmp_path: Path, array: np.ndarray) -> tuple[str, str]:
    data = bytes(ArrayBlob(array))
    name = name_of(data)
    path = tmp_path / name
    path.write_bytes(data)
    return name, str(path)


def _chunk(a: tuple[str, str], b: tuple[str, str], first: int, end: int) -> dict[str, Any]:
    payload = {"operation": "multiply", "a": {"$array": [a[0], first, end]}, "b": {"$array": b[0]},
               "row_offset": first}
    header, _ = decode_frame(chunk_job.run_chunk_job(encode_frame(
        {"task_type": "matrix_ops", "payload": payload, "files": {a[0]: a[1], b[0]: b[1]}}, {})))
    return header


@pytest.fixture
def isfinite_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every array np.isfinite is asked about."""
    sizes: list[int] = []
    real: Callable[..., Any] = np.isfinite

    def counting(x: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(int(np.size(x)))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(np, "isfinite", counting)
    return sizes


def test_b_is_checked_once_for_the_chunks_of_one_task(tmp_path: Path, isfinite_sizes: list[int]) -> None:
    rng = np.random.default_rng(7)
    a_arr, b_arr = rng.random((64, 48)), rng.random((48, 40))
    a, b = _file(tmp_path, a_arr), _file(tmp_path, b_arr)
    for first in (0, 32):
        header = _chunk(a, b, first, first + 32)
        assert "error" not in header
    assert isfinite_sizes.count(b_arr.size) == 1  # the second chunk trusted its kept map's check
    assert isfinite_sizes.count(32 * 48) == 2  # each chunk's rows of A are other views: checked
    other = _file(tmp_path, b_arr + 1.0)  # another blob: a new map, checked
    _chunk(a, other, 0, 32)
    assert isfinite_sizes.count(b_arr.size) == 2


def test_a_nan_in_b_is_refused_by_every_chunk(tmp_path: Path, isfinite_sizes: list[int]) -> None:
    rng = np.random.default_rng(8)
    b_arr = rng.random((48, 40))
    b_arr[47, 39] = np.nan
    a, b = _file(tmp_path, rng.random((64, 48))), _file(tmp_path, b_arr)
    for first in (0, 32):
        with pytest.raises(Exception, match="NaN or infinity"):
            _chunk(a, b, first, first + 32)
    assert isfinite_sizes.count(b_arr.size) == 2
