"""One found_network (core/founding.py): the genesis, then the founder's credits; a bad
amount or a ledger that has a network already is refused before anything is signed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_net.core.founding import FOUNDER_REASON, found_network
from ledger_net.errors import CreditError, LedgerError
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity

FOUNDER = Identity.from_seed(bytes(range(32)))


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    led = Ledger.open("sqlite://", FOUNDER, signer_threads=1)
    yield led
    led.close()


def test_founding_signs_the_genesis_then_mints_the_founders_credits(ledger: Ledger) -> None:
    genesis = found_network(ledger, "lab", 2.5, params={"reputation": {"initial_ppm": 400_000}})
    assert ledger.net == genesis.hash and genesis.body["issuers"] == [FOUNDER.node_id]
    assert genesis.body["decimals"] == 6 and genesis.body["params"] == {"reputation": {"initial_ppm": 400_000}}
    rows = list(ledger.store.select_events())
    assert [r.type for r in rows] == ["network.genesis", "credit.minted"] and all(r.valid for r in rows)
    mint = ledger.event(rows[1].hash)
    assert mint is not None and mint.body == {"to": FOUNDER.node_id, "amount": 2_500_000, "reason": FOUNDER_REASON}
    assert ledger.state.spendable(FOUNDER.node_id) == 2_500_000


def test_no_credits_no_mint(ledger: Ledger) -> None:
    found_network(ledger, "lab")
    assert [r.type for r in ledger.store.select_events()] == ["network.genesis"]


@pytest.mark.parametrize(("amount", "why"), [(-1, "must not be negative"), (0.0000001, "decimal places"),
                                             (float("nan"), "finite")])
def test_a_bad_amount_signs_nothing(ledger: Ledger, amount: float, why: str) -> None:
    with pytest.raises(CreditError, match=why):
        found_network(ledger, "lab", amount, what="--initial-credits")
    assert ledger.net is None and ledger.store.count() == 0


def test_a_ledger_with_a_network_is_not_founded_again(ledger: Ledger) -> None:
    found_network(ledger, "lab", 1)
    with pytest.raises(LedgerError, match="already belongs to network"):
        found_network(ledger, "other", 1)
    assert ledger.store.count() == 2
