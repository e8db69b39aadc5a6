"""Blob names: the frozen ``b3t`` piece-tree vectors, the old SHA-256 form still accepted,
and every piece, leaf and size checked (a flipped byte anywhere is caught)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from blake3 import blake3

from ledger_net.blob_names import (
    LEAF,
    PIECE,
    BlobMismatch,
    NewNameHasher,
    PieceHasher,
    check,
    check_piece,
    check_pieces,
    hasher_for,
    is_b3t_name,
    is_blob_name,
    is_sha256_name,
    name_of,
    piece_span,
    pieces,
    pieces_covering,
)
from ledger_net.compute import ArrayBlob, blob_hash
from ledger_net.compute.blobs import fetch_blob
from ledger_net.errors import SchemaError, TaskError
from ledger_net.ledger.schemas import validate_body


def _data(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def _readable_b3t(data: bytes) -> str:
    """The format as docs/tasks.md states it, written out plainly (no streaming)."""
    chunks = [data[i:i + PIECE] for i in range(0, len(data), PIECE)]
    leaves = b"".join(blake3(c).digest() for c in chunks)
    return "b3t:" + blake3(b"ledger_net blob v2\x00" + len(data).to_bytes(8, "big") + leaves).hexdigest()


# Computed once with the blake3 package (1.0.x) over _data(n); frozen so the format cannot drift.
VECTORS = {
    0: "b3t:1deb51c7f0a5885e6262db987fd9c9e49e90a2a50621dca716ab4ae9242e584c",
    1: "b3t:9d83ea3aebab7f7b43b8de8ad254fc6006ef23023ee7b8e386bd65fbb64d3341",
    PIECE - 1: "b3t:bdccd18afade157d370529d50b1585e4e854d6363b6ce59366e3391fc02be2ce",
    PIECE: "b3t:390a84503a7df2059971256b109dfe3824506cea8a5e722a2054d5a9ea967040",
    PIECE + 1: "b3t:a7da70549d83d878d3e3a46c98a80bdfaf511f3c3adc624b0e90fa2370157b59",
    2 * PIECE + 5: "b3t:eaa72675a0e3faf7a36584e5c34f83ed55157055cbfdc0289d9e3fbc8e5d027c",
}


@pytest.mark.parametrize("size", sorted(VECTORS))
def test_known_answers(size: int) -> None:
    data = _data(size)
    assert _readable_b3t(data) == VECTORS[size]
    h = PieceHasher()
    for start in range(0, size, 300_007):  # odd slices across piece boundaries
        h.update(data[start:start + 300_007])
    assert h.name() == VECTORS[size] and h.size == size
    assert len(h.leaves()) == LEAF * -(-size // PIECE)


def test_new_blobs_are_b3t_from_one_piece_up_sha256_below() -> None:
    small, big = _data(PIECE - 1), _data(PIECE)
    assert name_of(small) == hashlib.sha256(small).hexdigest()
    assert name_of(big) == VECTORS[PIECE]
    assert name_of([big[:10], memoryview(big)[10:]]) == VECTORS[PIECE]  # buffers hashed where they lie
    h = NewNameHasher()
    h.update(big[:PIECE // 2])
    h.update(big[PIECE // 2:])
    assert h.name() == VECTORS[PIECE] and h.leaves() is not None
    arr = np.arange(PIECE // 8 + 1, dtype="<f8")
    blob = ArrayBlob(arr)
    assert blob_hash(blob) == _readable_b3t(bytes(blob)) and is_b3t_name(blob.digest())


def test_old_names_still_accepted() -> None:
    data = _data(PIECE + 3)
    old = hashlib.sha256(data).hexdigest()
    assert is_sha256_name(old) and is_blob_name(old) and not is_b3t_name(old)
    assert check(old, data) and check(_readable_b3t(data), data) and not check(old, data[1:])
    assert fetch_blob(old, {old: data}) == data
    sink = hasher_for(old)
    sink.update(data)
    assert sink.name() == old
    with pytest.raises(TaskError):
        fetch_blob(old, {old: data[:-1] + b"\x00"})
    # An event naming its blobs either way passes the schema; a malformed name does not.
    body = {"task_id": "t1", "task_type": "matrix_ops", "escrow": 1, "max_price": 1, "chunks": 1, "spec": {},
            "blobs": [old, VECTORS[PIECE]]}
    validate_body("task.submitted", body)
    for bad in ("B3T:" + "0" * 64, "b3t:" + "0" * 63, "b3t:" + "A" * 64, "0" * 65):
        assert not is_blob_name(bad)
        with pytest.raises(SchemaError):
            validate_body("task.submitted", dict(body, blobs=[bad]))


def test_pieces_and_a_flipped_byte_in_any_piece() -> None:
    data = _data(3 * PIECE + 17)
    name = _readable_b3t(data)
    leaves = pieces(name, data)
    check_pieces(name, len(data), leaves)
    for index in range(4):
        start, end = piece_span(len(data), index)
        check_piece(leaves, index, data[start:end])
        for where in (start, (start + end) // 2, end - 1):
            flipped = bytearray(data[start:end])
            flipped[where - start] ^= 0x01
            with pytest.raises(BlobMismatch):
                check_piece(leaves, index, flipped)
        with pytest.raises(BlobMismatch):
            check_piece(leaves, (index + 1) % 4, data[start:end])  # the right bytes in the wrong place
    with pytest.raises(BlobMismatch):
        check_piece(leaves, 4, data[:1])
    with pytest.raises(BlobMismatch):
        pieces(name, data[:-1])


def test_a_wrong_leaves_list_is_caught() -> None:
    data = _data(2 * PIECE + 1)
    name = _readable_b3t(data)
    leaves = pieces(name, data)
    for i in range(len(leaves)):
        bad = bytearray(leaves)
        bad[i] ^= 0x80
        with pytest.raises(BlobMismatch):
            check_pieces(name, len(data), bytes(bad))
    for wrong_size in (len(data) - 1, len(data) + 1, 2 * PIECE):
        with pytest.raises(BlobMismatch):
            check_pieces(name, wrong_size, leaves)
    with pytest.raises(BlobMismatch):
        check_pieces(name, len(data), leaves[:-LEAF])
    with pytest.raises(BlobMismatch):
        check_pieces(hashlib.sha256(data).hexdigest(), len(data), leaves)
    check_pieces(VECTORS[0], 0, b"")


def test_ranges_map_to_pieces() -> None:
    size = 3 * PIECE + 17
    assert list(pieces_covering(size, 0, size)) == [0, 1, 2, 3]
    assert list(pieces_covering(size, PIECE - 1, PIECE + 1)) == [0, 1]
    assert list(pieces_covering(size, PIECE, 2 * PIECE)) == [1]
    assert list(pieces_covering(size, 5, 5)) == []
    assert piece_span(size, 3) == (3 * PIECE, size)
    with pytest.raises(BlobMismatch):
        pieces_covering(size, 0, size + 1)
