"""Node identity: an ed25519 key pair; the node id is the public key in hex.

Human names are labels carried in `node.joined`; they never authorise anything.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import nacl.exceptions
import nacl.signing

from ..errors import NodeError

KEY_FILE = "node.key"


class Identity:
    """A signing key and the public id derived from it."""

    __slots__ = ("_signing_key", "public_key", "node_id")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing_key = signing_key
        self.public_key = bytes(signing_key.verify_key)
        self.node_id = self.public_key.hex()

    @classmethod
    def generate(cls) -> "Identity":
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        """A deterministic identity (test vectors, reproducible demos)."""
        if len(seed) != 32:
            raise NodeError("an ed25519 seed is exactly 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str]) -> "Identity":
        """Read the node's key from its data directory, creating it (mode 0600) once."""
        path = Path(data_dir) / KEY_FILE
        if path.exists():
            text = path.read_text().strip()
            try:
                return cls.from_seed(bytes.fromhex(text))
            except ValueError:
                raise NodeError(f"{path} does not hold a hex ed25519 seed") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        identity = cls.generate()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(bytes(identity._signing_key).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return identity

    def sign(self, message: bytes) -> bytes:
        return self._signing_key.sign(message).signature

    def __repr__(self) -> str:
        return f"Identity({self.node_id[:16]}…)"


@lru_cache(maxsize=65536)
def _verify_key(public_hex: str) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(bytes.fromhex(public_hex))


def verify(public_hex: str, message: bytes, signature: bytes) -> bool:
    """True iff `signature` is `public_hex`'s ed25519 signature of `message`."""
    try:
        _verify_key(public_hex).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def is_public_key(text: object) -> bool:
    """Cheap shape check for a hex ed25519 public key."""
    if not isinstance(text, str) or len(text) != 64:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return text == text.lower()
