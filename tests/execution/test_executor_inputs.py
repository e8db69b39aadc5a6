"""Operand files reach warm workers as hard links in the executor's input dir, and every link
is undone when the chunk ends, also when a later operand of the same chunk is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ledger_net.execution.executor import ChunkExecutor


async def test_a_refused_operand_leaves_no_link_behind(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"operand")
    good = hashlib.sha256(b"operand").hexdigest()
    executor = ChunkExecutor(workers=1, work_dir=tmp_path / "work")
    try:
        outcome = await executor.run("range_reduce", {}, {}, {}, {good: str(blob), "not-a-hash": str(blob)})
        assert not outcome.ok and "not a blob hash" in (outcome.error or "")
        assert list(executor.inputs.iterdir()) == []
        assert executor._input_refs == {}
    finally:
        await executor.close()
