"""Two real nodes split a multiply whose operands have ``b3t`` names: the node that does not
hold the operands fetches all of B but only the pieces of A holding its chunks' rows (by range,
each piece checked), and the answer is numpy's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ledger_net.blob_names import PIECE, is_b3t_name, piece_count
from ledger_net.compute import blob_hash
from ledger_net.compute.blobs import ArrayBlob
from ledger_net.core.task import Task
from ledger_net.main import ComputeNetwork
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)


async def test_a_second_node_fetches_only_its_rows_of_a_and_the_product_is_numpys(tmp_path: Path) -> None:
    founder = ComputeNetwork(port=0, data_dir=tmp_path / "n0", initial_credits=1000.0, sync_interval=0.2,
                             quote_window=0.3, workers=1)
    await founder.start()
    second = ComputeNetwork(port=0, data_dir=tmp_path / "n1", seed_nodes=[founder.server.url], sync_interval=0.2,
                            quote_window=0.3, workers=1)
    try:
        await second.start()
        await wait_until(lambda: all(len(n.runner.nodes.nodes) == 2 for n in (founder, second)), 30,
                         "both nodes to see both joined")
        rng = np.random.default_rng(7)
        a, b = rng.random((1024, 1024)), rng.random((1024, 1024))  # 8 MiB each: 9 pieces
        task = Task.create_matrix_ops(founder.ledger.node_id, a, b, "multiply", {},
                                      {"chunk_size": 256, "max_price": 10.0})
        task_id = await founder.submit_task(task.to_dict())

        async def done() -> str | None:
            status = founder.runner.tasks.tasks[task_id]["status"]
            return status if status in ("completed", "failed", "cancelled") else None
        assert await wait_until(done, 120, "the multiply to finish") == "completed", \
            founder.runner.tasks.tasks[task_id]["reason"]
        result = await founder.get_task_result(task_id)
        # Stated tolerance: the workers' BLAS may sum in another order than this process's, so
        # equal within the dot product's rounding bound k * eps * (|A| @ |B|), k = 1024.
        assert np.all(np.abs(result - a @ b) <= 1024 * np.finfo(np.float64).eps * (np.abs(a) @ np.abs(b)))

        name_a, name_b = blob_hash(ArrayBlob(a)), blob_hash(ArrayBlob(b))
        assert is_b3t_name(name_a) and is_b3t_name(name_b)
        ran = [r for r in second.ledger.store.select_events()
               if r.type == "task.chunk_result" and r.author == second.ledger.node_id]
        assert ran, "the second node ran none of the chunks"
        assert second.engine is not None and second.engine.rows is not None
        if len(ran) < 4:  # it ran some of the chunks: it holds A in part, never in its store
            assert second.ledger.store.blob_path(name_a) is None
            held = second.engine.rows.held(name_a)
            assert 0 < len(held) < piece_count(8 + 64 + a.nbytes)
            assert second.engine.rows.fetched_pieces == len(held)
        assert second.ledger.store.blob_path(name_b) is not None  # every row needs all of B: whole
        # a whole fetch of A still works on the node that holds it in part
        whole = await second.blobs.get(name_a)
        assert len(whole) > 8 * PIECE and second.ledger.store.blob_path(name_a) is not None
    finally:
        await second.stop()
        await founder.stop()
