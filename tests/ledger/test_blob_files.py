"""Big blob files are reserved with one fallocate before they are written (issue 13): the file
must still hold exactly the blob's bytes, whatever the reservation promised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ledger_net.blob_names import name_of
from ledger_net.compute.blobs import ArrayBlob
from ledger_net.ledger.store import BIG_BLOB, Store


def _store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path}/x.db")
    store.blob_dir = tmp_path / "blobs"
    return store


class _Overstated:
    """Buffers whose len() promises more bytes than its parts hold."""

    def __init__(self, data: bytes, extra: int) -> None:
        self.data, self.extra = data, extra

    def parts(self) -> list[Any]:
        return [self.data[:10], self.data[10:]]

    def __len__(self) -> int:
        return len(self.data) + self.extra


def test_new_big_blob_file_holds_exactly_its_bytes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        blob = ArrayBlob(np.arange(3 * BIG_BLOB // 8 + 5, dtype=np.float64))
        name = store.put_new_blob(blob)
        path = store.blob_path(name)
        assert path is not None
        assert path.read_bytes() == bytes(blob)
        assert name == name_of(bytes(blob))
    finally:
        store.close()


def test_a_file_is_cut_to_what_was_written(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        data = bytes(range(256)) * (BIG_BLOB // 256 + 3)
        name = name_of(data)
        store.put_blob(name, _Overstated(data, 4096))
        path = store.blob_path(name)
        assert path is not None
        assert path.stat().st_size == len(data)
        assert path.read_bytes() == data
    finally:
        store.close()
