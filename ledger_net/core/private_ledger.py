"""A private in-memory network for the seed's standalone objects.

`Credits()` and `Reputation()` without a node are still backed by a real ledger:
their own key, their own genesis, signed events, projections — only the database
is in memory and nobody else is on the network.
"""

from __future__ import annotations

from typing import Any

from ..ledger.chain import Ledger
from ..ledger.identity import Identity
from ..projections.runner import ProjectionRunner
from .founding import found_network


def private_network(name: str, params: dict[str, Any] | None = None,
                    identity: Identity | None = None) -> tuple[Ledger, ProjectionRunner]:
    """An in-memory ledger whose genesis names its own key as the only issuer."""
    identity = identity or Identity.generate()
    ledger = Ledger.open("sqlite://", identity, signer_threads=1)
    runner = ProjectionRunner(ledger)
    found_network(ledger, f"{name}-{identity.node_id[:8]}", params=params)
    return ledger, runner
