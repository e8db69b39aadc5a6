"""The key at rest (issue 9, item 7): `node.key` sealed with a passphrase (argon2id +
SecretBox), opened by the CLI from --passphrase-file, $LEDGER_NET_KEY_PASSPHRASE or a
terminal, and by `ComputeNetwork(key_passphrase=...)`. A wrong or missing passphrase, or a
damaged file, is one clear error and changes nothing; the passphrase and the seed never
show in logs, /metrics, the explorer, reprs or error messages.

The unit tests seal with argon2id's minimum cost (1 pass, 8 KiB) to stay fast; the CLI
tests use `--key-kdf interactive`; one test checks the default is a real setting."""

from __future__ import annotations

import json
import logging
import os
import pickle
import select
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nacl.pwhash
import psutil
import pytest

from ledger_net.cli_common import key_passphrase
from ledger_net.errors import NodeError
from ledger_net.ledger.identity import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    KEY_FILE,
    PASSPHRASE_ENV,
    Identity,
    Passphrase,
    is_sealed,
    passphrase_from_env,
    passphrase_from_file,
    seal_key_file,
    verify,
)
from tests.support.cli import assert_one_line_error, invoke, json_of
from tests.support.nodes import NodeThread
from tests.support.processes import LineReader

pytestmark = pytest.mark.timeout(180)

FAST = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}
SECRET = "correct horse battery staple 7f3a"
WRONG = "correct horse battery staple 7f3b"


def sealed_dir(tmp_path: Path, passphrase: str = SECRET) -> tuple[Path, Identity]:
    data_dir = tmp_path / "d"
    identity = Identity.generate()
    identity.save(data_dir, passphrase, **FAST)
    return data_dir, identity


def seed_hex(identity: Identity) -> str:
    return bytes(identity._signing_key).hex()  # the secret the tests grep for


def document(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / KEY_FILE).read_text())


# ------------------------------------------------------------------ the sealed file

def test_sealed_key_round_trips_and_signs(tmp_path: Path) -> None:
    data_dir, identity = sealed_dir(tmp_path)
    path = data_dir / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert is_sealed(data_dir)
    doc = document(data_dir)
    assert doc["format"] == "ledger_net sealed key" and doc["version"] == 1
    assert doc["public_key"] == identity.node_id
    assert doc["kdf"] == {"name": "argon2id", "opslimit": FAST["opslimit"], "memlimit": FAST["memlimit"],
                          "salt": doc["kdf"]["salt"]}
    assert doc["cipher"] == "xsalsa20poly1305" and len(bytes.fromhex(doc["nonce"])) == 24
    text = path.read_text()
    assert seed_hex(identity) not in text and SECRET not in text

    opened = Identity.load(data_dir, SECRET)
    assert opened.node_id == identity.node_id and opened.can_sign
    assert verify(identity.node_id, b"m", opened.sign(b"m"))
    assert Identity.load_or_create(data_dir, Passphrase(SECRET.encode())).node_id == identity.node_id
    assert list(data_dir.iterdir()) == [path]  # no temporary file left behind


def test_two_seals_of_one_key_differ(tmp_path: Path) -> None:
    """A fresh salt and nonce each time: equal files would show equal keys."""
    identity = Identity.generate()
    identity.save(tmp_path / "a", SECRET, **FAST)
    identity.save(tmp_path / "b", SECRET, **FAST)
    a, b = document(tmp_path / "a"), document(tmp_path / "b")
    assert a["kdf"]["salt"] != b["kdf"]["salt"] and a["nonce"] != b["nonce"] and a["ciphertext"] != b["ciphertext"]


def test_public_key_is_readable_without_the_passphrase(tmp_path: Path) -> None:
    data_dir, identity = sealed_dir(tmp_path)
    public = Identity.public_of(data_dir)
    assert public.node_id == identity.node_id and not public.can_sign
    with pytest.raises(NodeError, match="without its key's passphrase"):
        public.sign(b"m")
    with pytest.raises(NodeError, match="cannot be saved"):
        public.save(tmp_path / "elsewhere")
    plain = tmp_path / "plain"
    Identity.load_or_create(plain)
    assert Identity.public_of(plain).can_sign  # a plain key reads as before


def test_default_cost_is_a_real_setting(tmp_path: Path) -> None:
    """The default is argon2id MODERATE (3 passes, 256 MiB), not the tests' minimum."""
    assert (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT) == (nacl.pwhash.argon2id.OPSLIMIT_MODERATE,
                                                    nacl.pwhash.argon2id.MEMLIMIT_MODERATE)
    created = Identity.load_or_create(tmp_path, SECRET)
    kdf = document(tmp_path)["kdf"]
    assert (kdf["opslimit"], kdf["memlimit"]) == (3, 256 << 20)
    started = time.perf_counter()
    assert Identity.load(tmp_path, SECRET).node_id == created.node_id
    assert time.perf_counter() - started > 0.05  # a real KDF ran (minimum cost takes well under 1 ms)


def test_wrong_passphrase_is_one_clear_error_and_changes_nothing(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    data_dir, identity = sealed_dir(tmp_path)
    before = (data_dir / KEY_FILE).read_bytes()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(NodeError) as caught:
        Identity.load(data_dir, WRONG)
    message = str(caught.value)
    assert "wrong passphrase" in message and str(data_dir / KEY_FILE) in message and "\n" not in message
    for secret in (WRONG, SECRET, seed_hex(identity)):
        assert secret not in message and secret not in caplog.text and secret not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert (data_dir / KEY_FILE).read_bytes() == before
    with pytest.raises(NodeError, match="wrong passphrase"):
        Identity.load_or_create(data_dir, WRONG)  # load_or_create never overwrites a key it cannot open
    assert (data_dir / KEY_FILE).read_bytes() == before


def test_missing_passphrase_and_plain_key_with_passphrase_are_refused(tmp_path: Path) -> None:
    data_dir, _ = sealed_dir(tmp_path)
    with pytest.raises(NodeError, match="is sealed: its passphrase is needed"):
        Identity.load_or_create(data_dir)
    plain = tmp_path / "plain"
    Identity.load_or_create(plain)
    before = (plain / KEY_FILE).read_bytes()
    with pytest.raises(NodeError, match="plain key but a passphrase was given"):
        Identity.load_or_create(plain, SECRET)
    assert (plain / KEY_FILE).read_bytes() == before


def _tamper(field: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        if field == "ciphertext":
            raw = bytearray(bytes.fromhex(doc["ciphertext"]))
            raw[5] ^= 1
            doc["ciphertext"] = raw.hex()
        elif field == "public_key":
            doc["public_key"] = Identity.generate().node_id
        elif field == "salt":
            doc["kdf"]["salt"] = "00" * 16
        elif field == "opslimit":
            doc["kdf"]["opslimit"] = 2
        elif field == "nonce":
            doc["nonce"] = "11" * 24
        elif field == "huge memlimit":
            doc["kdf"]["memlimit"] = 1 << 40
        elif field == "version":
            doc["version"] = 2
        elif field == "format":
            doc["format"] = "something else"
        elif field == "short ciphertext":
            doc["ciphertext"] = doc["ciphertext"][:-2]
        elif field == "not hex":
            doc["nonce"] = "zz" * 24
        elif field == "cipher":
            doc["cipher"] = "aes"
    return change


@pytest.mark.parametrize("field, fragment", [
    ("ciphertext", "wrong passphrase (or the file was altered)"),
    ("salt", "wrong passphrase (or the file was altered)"),
    ("opslimit", "wrong passphrase (or the file was altered)"),
    ("nonce", "wrong passphrase (or the file was altered)"),
    ("public_key", "was altered: its public key is not the sealed seed's"),
    ("huge memlimit", "argon2id limits are out of range"),
    ("version", "version 2 is not one this ledger_net reads"),
    ("format", "its format is not"),
    ("short ciphertext", "its ciphertext is not 48 bytes of hex"),
    ("not hex", "its nonce is not 24 bytes of hex"),
    ("cipher", "unknown KDF or cipher"),
])
def test_tampered_file_is_refused(tmp_path: Path, field: str, fragment: str) -> None:
    data_dir, identity = sealed_dir(tmp_path)
    doc = document(data_dir)
    _tamper(field)(doc)
    (data_dir / KEY_FILE).write_text(json.dumps(doc))
    before = (data_dir / KEY_FILE).read_bytes()
    started = time.perf_counter()
    with pytest.raises(NodeError) as caught:
        Identity.load(data_dir, SECRET)
    assert time.perf_counter() - started < 5  # a doctored cost is refused before the KDF runs
    assert fragment in str(caught.value), str(caught.value)
    assert SECRET not in str(caught.value) and seed_hex(identity) not in str(caught.value)
    assert (data_dir / KEY_FILE).read_bytes() == before


@pytest.mark.parametrize("content", [b"{not json", b"{}", b"[1]", b"\xff\xfe", b"{\"format\": 1}"])
def test_unreadable_file_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / KEY_FILE).write_bytes(content)
    with pytest.raises(NodeError, match="node.key"):
        Identity.load(tmp_path, SECRET)
    with pytest.raises(NodeError, match="node.key"):
        Identity.public_of(tmp_path)


def test_seal_an_existing_plain_key_in_place(tmp_path: Path) -> None:
    plain = Identity.load_or_create(tmp_path)
    sealed = seal_key_file(tmp_path, SECRET, **FAST)
    assert sealed.node_id == plain.node_id and is_sealed(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    assert seed_hex(plain) not in (tmp_path / KEY_FILE).read_text()
    assert Identity.load(tmp_path, SECRET).node_id == plain.node_id
    with pytest.raises(NodeError, match="already sealed"):
        seal_key_file(tmp_path, SECRET, **FAST)
    with pytest.raises(NodeError, match="already exists"):
        plain.save(tmp_path, SECRET, **FAST)


def test_passphrase_and_identity_do_not_show_themselves(tmp_path: Path) -> None:
    passphrase = Passphrase(SECRET)
    identity = Identity.generate()
    for shown in (repr(passphrase), str(passphrase), f"{passphrase!r} {passphrase}", repr([passphrase]),
                  repr(identity)):
        assert SECRET not in shown and seed_hex(identity) not in shown
    with pytest.raises(TypeError):
        pickle.dumps(passphrase)
    with pytest.raises(TypeError):
        pickle.dumps(identity)
    for empty in ("", b""):
        with pytest.raises(NodeError, match="empty"):
            Passphrase(empty)
    with pytest.raises(NodeError, match="out of range"):
        identity.save(tmp_path, SECRET, opslimit=0, memlimit=FAST["memlimit"])
    assert not (tmp_path / KEY_FILE).exists()


def test_passphrase_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_bytes(SECRET.encode() + b"\n")
    assert passphrase_from_file(tmp_path / "pw").reveal() == SECRET.encode()
    (tmp_path / "pw2").write_bytes(b"  spaced  \r\n")
    assert passphrase_from_file(tmp_path / "pw2").reveal() == b"  spaced  "  # only the newline goes
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(NodeError, match="empty"):
        passphrase_from_file(tmp_path / "empty")
    with pytest.raises(NodeError, match="cannot read the passphrase file"):
        passphrase_from_file(tmp_path / "missing")

    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    got = passphrase_from_env()
    assert got is not None and got.reveal() == SECRET.encode()
    assert PASSPHRASE_ENV not in os.environ
    assert passphrase_from_env() is None


def test_env_passphrase_is_gone_before_any_child_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that reads the key's passphrase from the environment removes it there, so a
    child process (a sandbox worker, anything) does not inherit it."""
    data_dir, _ = sealed_dir(tmp_path)
    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    got = key_passphrase(data_dir, None)
    assert got.reveal() == SECRET.encode()
    child = subprocess.run([sys.executable, "-c", f"import os; print(os.environ.get({PASSPHRASE_ENV!r}, 'unset'))"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "unset"
    # even a plain-key data dir, where no passphrase is used, takes it out
    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    (tmp_path / "pw").write_text("from the file\n")
    assert key_passphrase(tmp_path / "none", tmp_path / "pw").reveal() == b"from the file"  # the file wins
    assert PASSPHRASE_ENV not in os.environ


# ------------------------------------------------------------------ the command line

def _init_sealed(tmp_path: Path, **env: str) -> tuple[Path, Path]:
    (tmp_path / "pw").write_text(SECRET + "\n")
    data_dir = tmp_path / "node"
    result = invoke("init", "--data-dir", data_dir, "--encrypt-key", "--key-kdf", "interactive",
                    "--passphrase-file", tmp_path / "pw", "--initial-credits", 7, "--json")
    created = json_of(result)
    assert SECRET not in result.output
    assert is_sealed(data_dir) and created["node_id"] == Identity.public_of(data_dir).node_id
    assert document(data_dir)["kdf"]["memlimit"] == nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
    return data_dir, tmp_path / "pw"


def test_cli_init_encrypt_key_then_read_only_commands_need_no_passphrase(tmp_path: Path) -> None:
    data_dir, _ = _init_sealed(tmp_path)
    node_id = Identity.public_of(data_dir).node_id
    assert json_of(invoke("audit", "--data-dir", data_dir, "--json"))["ok"]
    assert json_of(invoke("verify", "--data-dir", data_dir, "--json"))["ok"]
    balance = json_of(invoke("explain", "balance", node_id, "--data-dir", data_dir, "--json"))
    assert node_id in json.dumps(balance)
    bundle = tmp_path / "bundle.ndjson"
    assert invoke("export", "--data-dir", data_dir, "--output", bundle).exit_code == 0
    # import into the sealed node's own dir works without the passphrase (nothing to sign)
    imported = json_of(invoke("import", bundle, "--data-dir", data_dir, "--json"))
    assert imported["stored"] == 0 and imported["duplicates"] == 2


def test_cli_init_refusals_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    line = assert_one_line_error(invoke("init", "--data-dir", fresh, "--encrypt-key"),
                                 "--encrypt-key needs a passphrase", "--passphrase-file")
    assert not fresh.exists(), line

    (tmp_path / "empty").write_text("\n")
    assert_one_line_error(invoke("init", "--data-dir", fresh, "--encrypt-key", "--passphrase-file",
                                 tmp_path / "empty"), "is empty")
    assert not fresh.exists()

    plain = tmp_path / "plain"
    Identity.load_or_create(plain)
    before = (plain / KEY_FILE).read_bytes()
    (tmp_path / "pw").write_text(SECRET)
    assert_one_line_error(invoke("init", "--data-dir", plain, "--encrypt-key", "--passphrase-file",
                                 tmp_path / "pw"), "already holds a plain key", "seal-key")
    assert (plain / KEY_FILE).read_bytes() == before and not (plain / "ledger.db").exists()


def test_cli_seal_key_seals_in_place(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    identity = Identity.load_or_create(plain)
    (tmp_path / "pw").write_text(SECRET + "\n")
    result = invoke("seal-key", "--data-dir", plain, "--key-kdf", "interactive", "--passphrase-file",
                    tmp_path / "pw", "--json")
    assert json_of(result)["node_id"] == identity.node_id and SECRET not in result.output
    assert Identity.load(plain, SECRET).node_id == identity.node_id
    assert_one_line_error(invoke("seal-key", "--data-dir", plain, "--passphrase-file", tmp_path / "pw"),
                          "already sealed")
    assert_one_line_error(invoke("seal-key", "--data-dir", tmp_path / "nokey", "--passphrase-file",
                                 tmp_path / "pw"), "no key at")


def test_cli_signing_command_refuses_wrong_or_missing_passphrase(tmp_path: Path) -> None:
    """`init` on a sealed key it must sign with: the wrong passphrase (file or env) or none at
    all is one error line holding neither secret, and the books are untouched."""
    data_dir, _ = _init_sealed(tmp_path)
    before = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}
    (tmp_path / "bad").write_text(WRONG + "\n")
    for result in (invoke("init", "--data-dir", data_dir, "--passphrase-file", tmp_path / "bad"),
                   invoke("init", "--data-dir", data_dir, env={PASSPHRASE_ENV: WRONG})):
        line = assert_one_line_error(result, "wrong passphrase", str(data_dir / KEY_FILE))
        assert WRONG not in result.output and SECRET not in result.output, line
    assert_one_line_error(invoke("init", "--data-dir", data_dir), "is sealed", "--passphrase-file", PASSPHRASE_ENV)
    assert_one_line_error(invoke("node", "--data-dir", data_dir, "--port", 0), "is sealed", "--passphrase-file")
    after = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}
    assert after == before
    # the right passphrase gets past the key, to init's own refusal of a dir already founded
    assert_one_line_error(invoke("init", "--data-dir", data_dir, env={PASSPHRASE_ENV: SECRET}),
                          "already belongs to network")


def test_cli_init_prompts_on_a_terminal_without_echo(tmp_path: Path) -> None:
    """On a terminal, `init --encrypt-key` asks twice with echo off; the passphrase is not
    printed back."""
    data_dir = tmp_path / "tty"
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    pid, fd = os.forkpty()
    if pid == 0:  # the child: the CLI on a terminal of its own
        try:
            os.execve(sys.executable, [sys.executable, "-m", "ledger_net.cli", "init", "--data-dir", str(data_dir),
                                       "--encrypt-key", "--key-kdf", "interactive", "--json"], env)
        finally:
            os._exit(127)
    seen = b""

    def read_until(marker: bytes, timeout: float = 60.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {marker!r}: {seen!r}")
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"closed before {marker!r}: {seen!r}")
                seen += chunk

    try:
        read_until(b"New passphrase for node.key")
        os.write(fd, SECRET.encode() + b"\n")
        read_until(b"Repeat")
        os.write(fd, SECRET.encode() + b"\n")
        read_until(b'"node_id"')
        read_until(b"}")
    finally:
        _, status = os.waitpid(pid, 0)
        try:
            while select.select([fd], [], [], 0.2)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                seen += chunk
        except OSError:
            pass
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert SECRET.encode() not in seen
    assert Identity.load(data_dir, SECRET).node_id == Identity.public_of(data_dir).node_id


# ------------------------------------------------------------------ a running node

class NodeProcess:
    """`ledger-net node` as a real subprocess, its stderr gathered line by line by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "ledger_net.cli", "node", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self._reader = LineReader(self.proc.stderr)

    def until(self, marker: str, timeout: float = 60.0) -> str:
        return self._reader.until(marker, timeout)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return self._reader.rest(10)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8", "replace")


def _child_environs(pid: int) -> list[bytes]:
    environs = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            environs.append(Path(f"/proc/{child.pid}/environ").read_bytes())
        except (OSError, psutil.Error):
            continue
    return environs


@pytest.mark.parametrize("source", ["file", "env"])
def test_cli_node_opens_a_sealed_key_and_leaks_nothing(tmp_path: Path, source: str) -> None:
    data_dir, pw = _init_sealed(tmp_path)
    seed = seed_hex(Identity.load(data_dir, SECRET))
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    args = ["--data-dir", str(data_dir), "--port", "0", "--log-level", "DEBUG"]
    if source == "file":
        args += ["--passphrase-file", str(pw)]
    else:
        env[PASSPHRASE_ENV] = SECRET
    node = NodeProcess(args, env)
    try:
        url = node.until("ready ").split("ready ", 1)[1].strip()
        balance = json_of(invoke("balance", "--url", url, "--json"))
        assert balance["balance"] == 7.0
        pages = [_get(url + "/metrics"), _get(url + "/"), _get(url + "/api/v1/explorer/summary"),
                 _get(url + "/api/v1/info")]
        assert Identity.public_of(data_dir).node_id in pages[2]  # the explorer shows the node, not its key
        environs = _child_environs(node.proc.pid)
        assert environs, "the node started no child process to look at"
    finally:
        output = node.stop()
    assert node.proc.returncode == 0, output
    for secret in (SECRET, seed):
        assert secret not in output
        for page in pages:
            assert secret not in page
        for environ in environs:
            assert secret.encode() not in environ and PASSPHRASE_ENV.encode() not in environ


def test_cli_node_wrong_passphrase_is_one_line(tmp_path: Path) -> None:
    data_dir, _ = _init_sealed(tmp_path)
    before = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    env[PASSPHRASE_ENV] = WRONG
    done = subprocess.run([sys.executable, "-m", "ledger_net.cli", "node", "--data-dir", str(data_dir), "--port",
                           "0", "--log-level", "DEBUG"], capture_output=True, text=True, env=env, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert lines[-1].startswith("error: ") and "wrong passphrase" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert WRONG not in done.stderr + done.stdout and SECRET not in done.stderr + done.stdout
    assert {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()} == before


def test_compute_network_with_key_passphrase(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The Python API: `ComputeNetwork(key_passphrase=...)` opens a sealed key (and a wrong one
    is a NodeError naming neither secret); the node keeps no readable trace of it."""
    from ledger_net.main import ComputeNetwork

    data_dir, identity = sealed_dir(tmp_path)
    seed = seed_hex(identity)
    caplog.set_level(logging.DEBUG)

    wrong = NodeThread(data_dir, key_passphrase=WRONG)
    with pytest.raises(NodeError) as caught:
        wrong.start()
    assert "wrong passphrase" in str(caught.value)
    assert not (data_dir / "ledger.db").exists()  # nothing opened, nothing written

    node = NodeThread(data_dir, key_passphrase=SECRET).start()
    try:
        assert node.node_id == identity.node_id
        network = node.network
        assert isinstance(network, ComputeNetwork) and network._key_passphrase is None
        shown = repr(vars(network)) + repr(network.ledger.identity)
        pages = [_get(node.url + "/metrics"), _get(node.url + "/"), _get(node.url + "/api/v1/explorer/summary")]
        status = node.call(lambda n: n.get_network_status())
    finally:
        node.stop()
    for secret in (SECRET, WRONG, seed):
        assert secret not in caplog.text and secret not in str(caught.value) and secret not in shown
        assert all(secret not in page for page in pages) and secret not in json.dumps(status, default=str)
