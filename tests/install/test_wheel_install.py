"""A wheel that works: built from the sources, installed into a throwaway venv outside the
checkout, then `ledger-net demo` and `ledger-net node` run from a directory that is
neither. This is what a user who installs the package (not an editable checkout) gets:
the migrations, static files and py.typed must travel inside the wheel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.support.processes import LineReader

ROOT = Path(__file__).resolve().parents[2]
# Not copied into the build: VCS data, caches and run outputs (the wheel is built from
# the sources alone, and building never writes into the shared checkout).
SKIP = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
                              ".benchmarks", ".ledger_net", "demo-data", "*.db", "*.db-wal", "*.db-shm", "*.lock")
VENV_PARENT = "/var/tmp" if os.path.isdir("/var/tmp") else None
MUST_SHIP = ("ledger_net/py.typed", "ledger_net/migrations/env.py", "ledger_net/migrations/script.py.mako",
             "ledger_net/migrations/versions/0001_initial_schema.py", "ledger_net/web/static/index.html")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LEDGER_NET_DATA_DIR", "VIRTUAL_ENV")}
    return {**env, "HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (argv, done.returncode, done.stdout[-2000:], done.stderr[-4000:])
    return done


@pytest.mark.timeout(240)
def test_wheel_installs_into_a_fresh_venv_and_runs_from_anywhere(tmp_path: Path) -> None:
    # The venv lives outside /tmp: a sandbox sees a fresh, empty /tmp, so an interpreter
    # installed there could not start the node's workers (see docs/operations.md).
    outside = Path(tempfile.mkdtemp(prefix="ledger-net-wheel-", dir=VENV_PARENT))
    try:
        _install_and_run(tmp_path, outside / "venv")
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def _install_and_run(tmp_path: Path, venv: Path) -> None:
    src, dist, cwd = tmp_path / "src", tmp_path / "dist", tmp_path / "elsewhere"
    shutil.copytree(ROOT, src, ignore=SKIP)
    cwd.mkdir()
    env = _env(tmp_path)

    # `build` comes with the test extra; without it this fails (never skips) with pip's message.
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)], cwd, env, 180)
    wheels = list(dist.glob("ledger_net-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert not [name for name in MUST_SHIP if name not in names], sorted(names)
    assert any(name.endswith("licenses/LICENSE") for name in names)

    # --system-site-packages: the dependencies come from this interpreter, not the network;
    # --ignore-installed --no-deps: the wheel's own copy lands in the venv beside the
    # editable checkout, which a venv's site-packages shadows.
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd, env, 60)
    python, ledger_net = venv / "bin" / "python", venv / "bin" / "ledger-net"
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", str(wheels[0])],
         cwd, env, 120)
    where = _run([str(python), "-c", "import ledger_net; print(ledger_net.__file__)"], cwd, env, 30).stdout.strip()
    assert Path(where).is_relative_to(venv), f"the venv imports {where}, not the wheel's copy"
    assert not Path(where).is_relative_to(ROOT)

    demo = _run([str(ledger_net), "demo", "--data-dir", "demo", "--tasks", "1", "--workers", "1", "--json"],
                cwd, env, 120)
    report = json.loads(demo.stdout)  # exit 0 already says the audit passed; its report agrees
    assert report["ok"] and report["rebuild_matches"] and report["peers_agree"], report
    assert (cwd / "demo").is_dir()

    proc = subprocess.Popen([str(ledger_net), "node", "--data-dir", "node", "--port", "0", "--log-level", "WARNING"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reader = LineReader(proc.stderr)
        assert reader.until("ready ", 60).split("ready ", 1)[1].startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        reader.until("stopped", 30)
        assert proc.wait(timeout=30) == 0, "".join(reader.seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert (cwd / "node" / "ledger.db").is_file()
