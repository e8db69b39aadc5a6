"""Node identity: ed25519 key pair, node id = hex public key, key file 0600."""

from __future__ import annotations

import os
import stat

import nacl.signing
import pytest

from ledger_net.errors import NodeError
from ledger_net.ledger.identity import KEY_FILE, Identity, is_public_key, verify


def test_from_seed_is_deterministic():
    a, b = Identity.from_seed(bytes(32)), Identity.from_seed(bytes(32))
    assert a.node_id == b.node_id
    assert a.node_id == bytes(nacl.signing.SigningKey(bytes(32)).verify_key).hex()
    assert Identity.from_seed(bytes([1]) * 32).node_id != a.node_id


def test_node_id_is_lower_hex_public_key():
    ident = Identity.generate()
    assert ident.node_id == ident.public_key.hex()
    assert len(ident.public_key) == 32
    assert is_public_key(ident.node_id)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_seed_must_be_32_bytes(seed):
    with pytest.raises(NodeError, match="32 bytes"):
        Identity.from_seed(seed)


def test_load_or_create_writes_0600_key_and_reloads_same_id(tmp_path):
    data_dir = tmp_path / "node" / "data"  # parent directories are created too
    first = Identity.load_or_create(data_dir)
    key_path = data_dir / KEY_FILE
    assert key_path.exists()
    mode = stat.S_IMODE(os.stat(key_path).st_mode)
    assert mode == 0o600, oct(mode)
    again = Identity.load_or_create(data_dir)
    assert again.node_id == first.node_id
    # the reloaded key signs exactly like the original one (ed25519 is deterministic)
    assert again.sign(b"msg") == first.sign(b"msg")
    assert not list(data_dir.glob("*.tmp"))


def test_load_or_create_ignores_umask(tmp_path):
    old = os.umask(0)
    try:
        Identity.load_or_create(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600


def test_different_dirs_give_different_ids(tmp_path):
    assert Identity.load_or_create(tmp_path / "a").node_id != Identity.load_or_create(tmp_path / "b").node_id


def test_corrupt_key_file_is_a_node_error(tmp_path):
    (tmp_path / KEY_FILE).write_text("not hex at all\n")
    with pytest.raises(NodeError, match="hex ed25519 seed"):
        Identity.load_or_create(tmp_path)


def test_short_key_file_is_a_node_error(tmp_path):
    (tmp_path / KEY_FILE).write_text("abcd\n")
    with pytest.raises(NodeError):
        Identity.load_or_create(tmp_path)


def test_sign_and_verify():
    ident = Identity.from_seed(bytes(range(32)))
    sig = ident.sign(b"hello")
    assert len(sig) == 64
    assert verify(ident.node_id, b"hello", sig)
    assert not verify(ident.node_id, b"hellp", sig)
    bad = bytearray(sig)
    bad[0] ^= 1
    assert not verify(ident.node_id, b"hello", bytes(bad))
    other = Identity.from_seed(bytes(32))
    assert not verify(other.node_id, b"hello", sig)
    assert not verify("zz" * 32, b"hello", sig)  # not a key: False, not an exception
    assert not verify(ident.node_id, b"hello", b"short")


@pytest.mark.parametrize(
    "text,ok",
    [("ab" * 32, True), ("AB" * 32, False), ("ab" * 31, False), ("zz" * 32, False), (None, False), (123, False)],
)
def test_is_public_key(text, ok):
    assert is_public_key(text) is ok


def test_repr_does_not_leak_the_seed():
    ident = Identity.from_seed(bytes([7]) * 32)
    assert (bytes([7]) * 32).hex() not in repr(ident)
