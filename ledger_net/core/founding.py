"""Founding a network, written once: the genesis (the founder its only issuer) and then the
founder's first credits. `ledger-net init`, a `ComputeNetwork` with no seeds, the demo and
the seed's private ledgers all found through `found_network`, so a network is born the
same way whoever starts it, and a bad amount is refused before anything is signed.
"""

from __future__ import annotations

from typing import Any

from ..errors import CreditError, LedgerError
from ..ledger.chain import Ledger
from ..ledger.events import Event
from .money import to_units

FOUNDER_REASON = "founder's credits"
DECIMALS = 6  # the base unit of a new network: 10**-6 of a credit


def found_network(ledger: Ledger, name: str, initial_credits: float = 0, *, params: dict[str, Any] | None = None,
                  reason: str = FOUNDER_REASON, what: str = "initial_credits") -> Event:
    """Found a network on the empty `ledger` and return its genesis: the genesis names this
    node the only issuer, then `initial_credits` (credits, not units; none when 0) are minted
    to it. `what` names the amount in errors. CreditError for a negative or too fine amount,
    LedgerError when the ledger already has a network; either way nothing is signed."""
    if ledger.net is not None:
        raise LedgerError(f"this ledger already belongs to network {ledger.net}")
    units = to_units(initial_credits, DECIMALS, what=what)  # checked before the genesis is signed
    if units < 0:
        raise CreditError(f"{what} must not be negative")
    genesis = ledger.create_network(name, decimals=DECIMALS, params=params)
    if units:
        ledger.append("credit.minted", {"to": ledger.node_id, "amount": units, "reason": reason})
    return genesis
