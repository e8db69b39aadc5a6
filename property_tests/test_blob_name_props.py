"""Property test of ``b3t`` blob names: for any size near a piece boundary and any slicing of
the stream, the whole blob's name equals the name rebuilt from its pieces, every piece checks
against the leaves, and the leaves check against the name."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_net.blob_names import (
    PIECE,
    NewNameHasher,
    PieceHasher,
    check,
    check_piece,
    check_pieces,
    name_of,
    piece_count,
    piece_span,
    pieces,
    root_name,
)

# Sizes within a few bytes of 0, 1, 2 or 3 whole pieces (where off-by-ones live).
SIZES = st.builds(lambda k, d: max(0, k * PIECE + d), st.integers(0, 3), st.integers(-3, 3))


@settings(deadline=None, max_examples=40)  # each example hashes up to 3 MiB a few times
@given(size=SIZES, seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 3 * PIECE + 3), max_size=6))
def test_whole_blob_name_equals_the_name_from_its_pieces(size: int, seed: int, cuts: list[int]) -> None:
    data = random.Random(seed).randbytes(size)
    whole = PieceHasher()
    whole.update(data)
    name = whole.name()
    assert check(name, data)

    sliced = PieceHasher()  # any slicing of the stream gives the same leaves
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    for a, b in zip(bounds, bounds[1:], strict=False):
        sliced.update(data[a:b])
    assert sliced.name() == name

    new = NewNameHasher()  # the form a new blob gets: b3t from one whole piece up, SHA-256 below
    for a, b in zip(bounds, bounds[1:], strict=False):
        new.update(data[a:b])
    assert new.name() == name_of(data) == (name if size >= PIECE else hashlib.sha256(data).hexdigest())

    leaves = pieces(name, data)
    assert len(leaves) == 32 * piece_count(size)
    rebuilt = PieceHasher()
    for index in range(piece_count(size)):
        a, b = piece_span(size, index)
        check_piece(leaves, index, data[a:b])
        rebuilt.update(data[a:b])
    assert rebuilt.leaves() == leaves
    assert root_name(size, leaves) == name
    check_pieces(name, size, leaves)
