"""Node identity: an ed25519 key pair; the node id is the public key in hex.

Human names are labels carried in `node.joined`; they never authorise anything.

The key lives in `DATA_DIR/node.key`, mode 0600, in one of two forms:

- **plain** (the default for local use): the 32-byte seed in hex, one line;
- **sealed** (`ledger-net init --encrypt-key`, or a passphrase given to the Python API):
  a small JSON document, `{"format": "ledger_net sealed key", "version": 1, ...}`, holding
  the public key in clear (so read-only tools know the node id without the passphrase),
  the argon2id parameters and salt, and the seed sealed with `nacl.secret.SecretBox`
  under the key argon2id derives from the passphrase. After opening, the public key of
  the unsealed seed must equal the stored one: a file whose header was altered is refused.

A wrong passphrase, a missing one, or a damaged file is one `NodeError` line that names
the file and never the passphrase or the seed; nothing on disk changes.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils

from ..errors import NodeError
from .datadir import KEY_FILE as KEY_FILE  # re-exported: callers name the key file through identity
from .datadir import DataDir

PASSPHRASE_ENV = "LEDGER_NET_KEY_PASSPHRASE"

SEALED_FORMAT = "ledger_net sealed key"
SEALED_VERSION = 1
_argon2id = nacl.pwhash.argon2id
# MODERATE: 3 passes over 256 MiB, measured 0.33 s on an idle core, 1.1-1.3 s with the machine's
# other core busy, once per node start. (INTERACTIVE, 2 passes over 64 MiB: 0.05-0.2 s;
# SENSITIVE, 4 passes over 1 GiB: 3.5-4.9 s.) See docs/security.md#the-key-at-rest.
KDF_LEVELS: dict[str, tuple[int, int]] = {
    "interactive": (_argon2id.OPSLIMIT_INTERACTIVE, _argon2id.MEMLIMIT_INTERACTIVE),
    "moderate": (_argon2id.OPSLIMIT_MODERATE, _argon2id.MEMLIMIT_MODERATE),
    "sensitive": (_argon2id.OPSLIMIT_SENSITIVE, _argon2id.MEMLIMIT_SENSITIVE),
}
DEFAULT_KDF_LEVEL = "moderate"
DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT = KDF_LEVELS[DEFAULT_KDF_LEVEL]
# A sealed file names its own cost; these bounds keep a doctored file from making the node
# spend minutes or gigabytes before the (then failing) decryption.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT = 2 << 30


class Passphrase:
    """A passphrase that never shows itself: its repr and str are a fixed mask, so it
    cannot leak through a log line, a traceback's locals or an error message."""

    __slots__ = ("_value",)
    _value: bytes

    def __init__(self, value: str | bytes | Passphrase) -> None:
        if isinstance(value, Passphrase):
            value = value._value
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise NodeError("a key passphrase is text or bytes")
        if not value:
            raise NodeError("the key passphrase is empty")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """The passphrase's bytes, for the KDF only."""
        return self._value

    def __repr__(self) -> str:
        return "Passphrase(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # no pickling into a worker or a cache
        raise TypeError("a Passphrase is not picklable")


PassphraseLike = str | bytes | Passphrase


class Identity:
    """A signing key and the public id derived from it.

    An identity opened without its passphrase (`public_of`) knows its node id but
    cannot sign: `sign` raises NodeError instead of a half-working node."""

    __slots__ = ("_signing_key", "public_key", "node_id")

    def __init__(self, signing_key: nacl.signing.SigningKey | None, public_key: bytes | None = None) -> None:
        self._signing_key = signing_key
        if signing_key is not None:
            public_key = bytes(signing_key.verify_key)
        if public_key is None or len(public_key) != 32:
            raise NodeError("an ed25519 public key is exactly 32 bytes")
        self.public_key = public_key
        self.node_id = self.public_key.hex()

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """A deterministic identity (test vectors, reproducible demos)."""
        if len(seed) != 32:
            raise NodeError("an ed25519 seed is exactly 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str], passphrase: PassphraseLike | None = None, *,
                       opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT) -> Identity:
        """Read the node's key from its data directory, creating it (mode 0600) once.

        With a passphrase a new key is written sealed (argon2id at `opslimit`/`memlimit`,
        then SecretBox) and a sealed key is opened; a plain key given a passphrase is
        refused, so an operator never believes a key is sealed when it is not."""
        path = DataDir.of(data_dir).key
        if path.exists():
            return cls.load(data_dir, passphrase)
        identity = cls.generate()
        identity.save(data_dir, passphrase, opslimit=opslimit, memlimit=memlimit)
        return identity

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str], passphrase: PassphraseLike | None = None) -> Identity:
        """Open an existing key able to sign; NodeError if it is missing, damaged, sealed
        and no passphrase was given, or the passphrase is wrong."""
        path = DataDir.of(data_dir).key
        text = _read_key_text(path)
        if not _looks_sealed(text):
            if passphrase is not None:
                raise NodeError(f"{path} is a plain key but a passphrase was given: seal it with "
                                "`ledger-net seal-key`, or give no passphrase")
            return cls._from_plain(path, text)
        if passphrase is None:
            raise NodeError(f"{path} is sealed: its passphrase is needed to sign "
                            f"(--passphrase-file FILE, ${PASSPHRASE_ENV}, or a terminal)")
        return cls._unseal(path, _parse_sealed(path, text), Passphrase(passphrase))

    @classmethod
    def public_of(cls, data_dir: str | os.PathLike[str]) -> Identity:
        """The node's identity for reading: a plain key in full, a sealed one as its public
        key only (read-only commands need the node id, never the passphrase)."""
        path = DataDir.of(data_dir).key
        text = _read_key_text(path)
        if not _looks_sealed(text):
            return cls._from_plain(path, text)
        return cls(None, _parse_sealed(path, text)["public_key"])

    @classmethod
    def _from_plain(cls, path: Path, text: str) -> Identity:
        try:
            return cls.from_seed(bytes.fromhex(text.strip()))
        except (ValueError, NodeError):
            raise NodeError(f"{path} does not hold a hex ed25519 seed") from None

    @classmethod
    def _unseal(cls, path: Path, sealed: dict[str, Any], passphrase: Passphrase) -> Identity:
        key = _argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.reveal(), sealed["salt"],
                            opslimit=sealed["opslimit"], memlimit=sealed["memlimit"])
        try:
            seed = nacl.secret.SecretBox(key).decrypt(sealed["ciphertext"], sealed["nonce"])
        except nacl.exceptions.CryptoError:
            raise NodeError(f"cannot open {path}: wrong passphrase (or the file was altered)") from None
        if len(seed) != 32:
            raise NodeError(f"{path} is damaged: the sealed seed is not 32 bytes")
        identity = cls(nacl.signing.SigningKey(seed))
        if identity.public_key != sealed["public_key"]:
            raise NodeError(f"{path} was altered: its public key is not the sealed seed's")
        return identity

    @property
    def can_sign(self) -> bool:
        return self._signing_key is not None

    def save(self, data_dir: str | os.PathLike[str], passphrase: PassphraseLike | None = None, *,
             opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT, replace: bool = False) -> Path:
        """Write this key to `data_dir/node.key` (0600, atomically: a temporary file, fsync,
        rename), plain or sealed under `passphrase`. An existing key is kept unless `replace`."""
        if self._signing_key is None:
            raise NodeError("a key opened without its passphrase cannot be saved")
        path = DataDir.of(data_dir).key
        if path.exists() and not replace:
            raise NodeError(f"{path} already exists")
        if passphrase is None:
            text = bytes(self._signing_key).hex() + "\n"
        else:
            text = _seal(bytes(self._signing_key), self.public_key, Passphrase(passphrase), opslimit, memlimit)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)  # O_CREAT's mode does not reach a file left over from a crash
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        return path

    def sign(self, message: bytes) -> bytes:
        if self._signing_key is None:
            raise NodeError(f"node {self.node_id[:16]}… was opened without its key's passphrase and cannot sign")
        return self._signing_key.sign(message).signature

    def __repr__(self) -> str:
        return f"Identity({self.node_id[:16]}…)"

    def __reduce__(self) -> Any:  # the seed must not travel by pickle (process pools, caches)
        raise TypeError("an Identity is not picklable")


def is_sealed(data_dir: str | os.PathLike[str]) -> bool:
    """True iff `data_dir/node.key` exists and is sealed (needs a passphrase to sign)."""
    path = DataDir.of(data_dir).key
    return path.is_file() and _looks_sealed(_read_key_text(path))


def seal_key_file(data_dir: str | os.PathLike[str], passphrase: PassphraseLike, *,
                  opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT) -> Identity:
    """Seal an existing plain `node.key` in place (same key, same node id), atomically."""
    path = DataDir.of(data_dir).key
    text = _read_key_text(path)
    if _looks_sealed(text):
        raise NodeError(f"{path} is already sealed")
    identity = Identity._from_plain(path, text)
    identity.save(data_dir, passphrase, opslimit=opslimit, memlimit=memlimit, replace=True)
    return identity


def passphrase_from_env(environ: Any = None) -> Passphrase | None:
    """Take the passphrase out of $LEDGER_NET_KEY_PASSPHRASE, removing the variable so
    no child process (sandbox workers included) inherits it."""
    env = os.environ if environ is None else environ
    value = env.pop(PASSPHRASE_ENV, None)
    return Passphrase(value) if value else None


def passphrase_from_file(path: str | os.PathLike[str]) -> Passphrase:
    """The passphrase held by a file: its bytes less one trailing newline."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise NodeError(f"cannot read the passphrase file {path}: {exc.strerror or exc}") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise NodeError(f"the passphrase file {path} is empty")
    return Passphrase(data)


# ------------------------------------------------------------------ the sealed format

def _seal(seed: bytes, public_key: bytes, passphrase: Passphrase, opslimit: int, memlimit: int) -> str:
    _check_limits(opslimit, memlimit, "the key's argon2id limits")
    salt = nacl.utils.random(_argon2id.SALTBYTES)
    key = _argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.reveal(), salt,
                        opslimit=opslimit, memlimit=memlimit)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    ciphertext = nacl.secret.SecretBox(key).encrypt(seed, nonce).ciphertext
    document = {"format": SEALED_FORMAT, "version": SEALED_VERSION, "public_key": public_key.hex(),
                "kdf": {"name": "argon2id", "opslimit": opslimit, "memlimit": memlimit, "salt": salt.hex()},
                "cipher": "xsalsa20poly1305", "nonce": nonce.hex(), "ciphertext": ciphertext.hex()}
    return json.dumps(document, indent=1) + "\n"


def _read_key_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NodeError(f"no key at {path}") from None
    except OSError as exc:
        raise NodeError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise NodeError(f"{path} is neither a plain nor a sealed key") from None


def _looks_sealed(text: str) -> bool:
    return text.lstrip().startswith("{")


def _check_limits(opslimit: Any, memlimit: Any, what: str) -> None:
    if not (type(opslimit) is int and _argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT
            and type(memlimit) is int and _argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT):
        raise NodeError(f"{what} are out of range (opslimit {_argon2id.OPSLIMIT_MIN}..{MAX_OPSLIMIT}, "
                        f"memlimit {_argon2id.MEMLIMIT_MIN}..{MAX_MEMLIMIT} bytes)")


def _parse_sealed(path: Path, text: str) -> dict[str, Any]:
    """The sealed document's fields as bytes and ints; NodeError naming what is wrong."""
    def damaged(why: str) -> NodeError:
        return NodeError(f"{path} is not a readable sealed key: {why}")

    try:
        doc = json.loads(text)
    except ValueError:
        raise damaged("not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != SEALED_FORMAT:
        raise damaged(f"its format is not {SEALED_FORMAT!r}")
    if doc.get("version") != SEALED_VERSION:
        raise damaged(f"version {doc.get('version')!r} is not one this ledger_net reads ({SEALED_VERSION})")
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id" or doc.get("cipher") != "xsalsa20poly1305":
        raise damaged("it names an unknown KDF or cipher")

    def hex_field(holder: dict[str, Any], name: str, size: int | None) -> bytes:
        value = holder.get(name)
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            raw = None
        if raw is None or (size is not None and len(raw) != size):
            raise damaged(f"its {name} is not {'hex' if size is None else f'{size} bytes of hex'}")
        return raw

    fields = {"public_key": hex_field(doc, "public_key", 32), "salt": hex_field(kdf, "salt", _argon2id.SALTBYTES),
              "nonce": hex_field(doc, "nonce", nacl.secret.SecretBox.NONCE_SIZE),
              "ciphertext": hex_field(doc, "ciphertext", 32 + nacl.secret.SecretBox.MACBYTES),
              "opslimit": kdf.get("opslimit"), "memlimit": kdf.get("memlimit")}
    try:
        _check_limits(fields["opslimit"], fields["memlimit"], "its argon2id limits")
    except NodeError as exc:
        raise damaged(str(exc)) from None
    return fields


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------ verifying

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
