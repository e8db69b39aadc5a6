"""Every module of ledger_net imports on its own, in a fresh interpreter.

An import circle often hides when modules are imported in a lucky order (the test suite's,
or the CLI's); importing each module first, with nothing of the package loaded, shows it as
an ImportError naming a partly initialised module. One subprocess imports them all, clearing
``ledger_net`` from ``sys.modules`` before each, so it stays one process. The
import-linter contracts in pyproject.toml keep the layers; this test keeps the import order
honest at run time, including imports inside functions that run at import.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import ledger_net

ROOT = Path(__file__).resolve().parents[2]

# Each module is imported first thing, with every ledger_net module (and its submodules)
# dropped from sys.modules before the next: third-party packages stay loaded, which keeps it
# fast and cannot mask a circle inside ledger_net.
_CHILD = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "ledger_net" or m.startswith("ledger_net.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps(failures))
"""


def all_modules() -> list[str]:
    """Every module and package under ledger_net/, except Alembic's env script: it runs
    inside Alembic's migration context, which a bare import does not provide."""
    names = ["ledger_net"]
    for info in pkgutil.walk_packages(ledger_net.__path__, prefix="ledger_net."):
        if info.name != "ledger_net.migrations.env":
            names.append(info.name)
    return sorted(names)


def test_module_list_is_complete() -> None:
    """The walk finds the package's modules (a broken walk would make the next test vacuous)."""
    names = all_modules()
    for expected in ("ledger_net.main", "ledger_net.market.routing", "ledger_net.network.control",
                     "ledger_net.web.explorer", "ledger_net.ledger.chain", "ledger_net.pricing.dynamic"):
        assert expected in names
    assert len(names) > 80


def test_every_module_imports_alone() -> None:
    names = all_modules()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(names)], capture_output=True, text=True,
                          timeout=240, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n".join(f"--- {name}\n{text}" for name, text in failures.items())
