"""The layers as enforced: the import-linter contract holds, and docs/architecture.md draws it.

The contract lives in pyproject.toml ([tool.importlinter]); `.ci/run` runs `lint-imports` in
its lint step. This test runs it too, so a plain `pytest` run notices a broken layer, and it
compares the hand-drawn diagram in docs/architecture.md with the contract row by row, so the
picture cannot drift from what is checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- layers:"


def contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert layers["containers"] == ["ledger_net"]
    return [" | ".join(part.strip() for part in row.split("|")) for row in layers["layers"]]


def drawn_layers() -> list[str]:
    """The rows of the diagram after the marker in docs/architecture.md, top to bottom."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text[text.index(MARKER):].split("```")[1]
    rows = [m.group(1) for m in re.finditer(r"^\s*│ (.+?)\s*│", block, flags=re.MULTILINE)]
    return [" | ".join(part.strip() for part in row.split("|")) for row in rows]


def test_diagram_matches_contract() -> None:
    drawn, enforced = drawn_layers(), contract_layers()
    assert len(enforced) >= 10
    assert drawn == enforced, "docs/architecture.md's layer diagram differs from [tool.importlinter] layers"


def test_every_top_level_module_has_a_layer() -> None:
    """A new top-level package or module must be placed (the contract is also exhaustive)."""
    placed = {name for row in contract_layers() for name in row.split(" | ")}
    present = {p.stem for p in (ROOT / "ledger_net").glob("*.py") if p.stem != "__init__"}
    present |= {p.parent.name for p in (ROOT / "ledger_net").glob("*/__init__.py")}
    assert present <= placed, f"not in any layer: {sorted(present - placed)}"


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed (.[test] extra)")
def test_contracts_are_kept() -> None:
    proc = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout
