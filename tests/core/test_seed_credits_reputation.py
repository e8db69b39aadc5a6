"""The seed's Credits and Reputation examples, run with `src.` replaced by `ledger_net.`,
plus the rules the examples rely on."""

from __future__ import annotations

import pytest

from ledger_net.core.credits import Credits, CreditTransaction
from ledger_net.core.reputation import Reputation
from ledger_net.errors import CreditError, NodeError
from ledger_net.ledger.identity import Identity


async def credits_example(out: list[str]) -> Credits:
    # The seed's example, verbatim but for `print` going to `out`.
    credits = Credits(initial_balance=500.0, max_balance=10000.0)
    out.append(f"💰 Начальный баланс: {credits.get_balance()}")
    success = credits.add_credits(100.0, "task_reward")
    if success:
        out.append("✅ Добавлено 100 кредитов")
    success = credits.transfer_credits("node-002", 50.0)
    if success:
        out.append("✅ Переведено 50 кредитов node-002")
    balance = credits.get_balance()
    out.append(f"💰 Текущий баланс: {balance}")
    history = credits.get_transaction_history(limit=10)
    out.append(f"📊 История транзакций: {len(history)} записей")
    for tx in history:
        out.append(f"  - {tx.timestamp}: {tx.amount} ({tx.type})")
    metrics = credits.get_credit_metrics()
    out.append(f"📈 Метрики: {metrics}")
    return credits


async def test_seed_credits_example_runs_and_keeps_the_books() -> None:
    out: list[str] = []
    credits = await credits_example(out)
    assert out[0] == "💰 Начальный баланс: 500.0"
    assert "✅ Переведено 50 кредитов node-002" in out
    assert "💰 Текущий баланс: 550.0" in out
    assert "📊 История транзакций: 3 записей" in out
    history = credits.get_transaction_history(limit=10)
    assert [tx.type for tx in history] == ["voucher_issued", "minted", "minted"]
    assert all(isinstance(tx, CreditTransaction) for tx in history)
    metrics = credits.get_credit_metrics()
    assert metrics["balance"] == 550.0 and metrics["vouchers"] == 50.0 and metrics["conservation_ok"]
    # every change is a signed event of the private ledger
    types = [r.type for r in credits.ledger.stored()]
    assert types == ["network.genesis", "credit.minted", "credit.minted", "credit.voucher_issued"]
    assert all(credits.ledger.event(r.hash).verify_signature() for r in credits.ledger.stored())


def test_bad_credit_operations_raise_and_append_nothing() -> None:
    credits = Credits(initial_balance=100.0, max_balance=1000.0, min_transfer=0.5)
    before = credits.ledger.store.count()
    other = Identity.generate().node_id
    bad = [
        lambda: credits.transfer_credits(other, 1000.0),  # overdraft
        lambda: credits.transfer_credits(other, 0.1),  # below min_transfer
        lambda: credits.transfer_credits(other, -5),
        lambda: credits.transfer_credits(other, 0),
        lambda: credits.transfer_credits(other, float("nan")),
        lambda: credits.transfer_credits(other, 1.0000001),  # finer than the base unit
        lambda: credits.transfer_credits("", 1.0),
        lambda: credits.transfer_credits(" node", 1.0),
        lambda: credits.transfer_credits(123, 1.0),  # type: ignore[arg-type]
        lambda: credits.transfer_credits(credits.node_id, 1.0),
        lambda: credits.add_credits(950.0),  # breaches max_balance
        lambda: credits.add_credits(True),  # type: ignore[arg-type]
        lambda: credits.remove_credits(101.0),
        lambda: credits.get_transaction_history(limit=-1),
        lambda: credits.predict_credit_flow(days=0),
    ]
    for attempt in bad:
        with pytest.raises(CreditError):
            attempt()
    assert credits.ledger.store.count() == before
    assert credits.get_balance() == 100.0


def test_transfer_to_a_key_is_received_and_vouchers_are_settled_or_reclaimed() -> None:
    alice = Credits(initial_balance=100.0)
    bob = Identity.generate().node_id
    assert alice.transfer_credits(bob, 10.0)
    assert alice.get_balance() == 90.0
    assert alice.ledger.state.open_credits_to(bob)[0][1] == 10_000_000
    alice.transfer_credits("carol", 5.0)
    (voucher,) = alice.open_vouchers()
    assert voucher["name"] == "carol" and voucher["amount"] == 5.0
    alice.reclaim_voucher(voucher["voucher_id"])
    assert alice.get_balance() == 90.0 and alice.open_vouchers() == []
    with pytest.raises(CreditError):
        alice.reclaim_voucher(voucher["voucher_id"])  # already settled
    alice.transfer_credits("dave", 5.0)
    (voucher,) = alice.open_vouchers()
    alice.settle_voucher(voucher["voucher_id"], bob)
    assert alice.get_balance() == 85.0
    assert sum(units for _, units in alice.ledger.state.open_credits_to(bob)) == 15_000_000
    assert alice.ledger.state.conserved()


def test_remove_credits_burns_and_conservation_counts_it() -> None:
    credits = Credits(initial_balance=10.0)
    credits.remove_credits(2.5, "fee")
    assert credits.get_balance() == 7.5
    supply = credits.ledger.state.supply()
    assert supply["burnt"] == 2_500_000 and credits.ledger.state.conserved()
    assert credits.get_transaction_history(1)[0].type == "burned"


def test_credit_flow_prediction_follows_the_history() -> None:
    credits = Credits(initial_balance=100.0)
    credits.add_credits(50.0)
    forecast = credits.predict_credit_flow(days=10)
    assert forecast["sample_size"] == 2
    assert forecast["daily_inflow"] == pytest.approx(150.0)
    assert forecast["projected_balance"] == pytest.approx(min(10000.0, 150.0 + 150.0 * 10))


async def reputation_example(out: list[str]) -> Reputation:
    reputation = Reputation(initial_score=0.5, decay_rate=0.01, reward_multiplier=1.2, penalty_multiplier=1.5)
    out.append(f"🏆 Начальный балл: {reputation.get_score()}")
    out.append(f"📊 Уровень: {reputation.get_level()}")
    reputation.update_score(success=True, quality=0.9)
    out.append(f"✅ После успешного выполнения: {reputation.get_score()}")
    reputation.update_score(success=False, quality=0.3)
    out.append(f"❌ После неудачного выполнения: {reputation.get_score()}")
    reputation.add_positive_feedback(0.5)
    out.append(f"👍 После положительной обратной связи: {reputation.get_score()}")
    metrics = reputation.get_metrics()
    out.append(f"📈 Метрики: {metrics}")
    trend = reputation.get_reputation_trend(days=7)
    out.append(f"📊 Тренд за 7 дней: {trend}")
    return reputation


async def test_seed_reputation_example_moves_the_score_deterministically() -> None:
    out: list[str] = []
    rep = await reputation_example(out)
    assert out[0] == "🏆 Начальный балл: 0.5" and out[1] == "📊 Уровень: neutral"
    scores = [float(line.rsplit(": ", 1)[1]) for line in out[2:5]]
    assert scores[0] > 0.5 and scores[1] < scores[0] and scores[2] > scores[1]
    # integer arithmetic: the same feedback gives the same scores in a second, independent ledger
    again = await reputation_example([])
    assert again.get_score() == rep.get_score()
    metrics = rep.get_metrics()
    assert metrics["success_rate"] == pytest.approx(2 / 3)
    assert metrics["quality_score"] == pytest.approx((0.9 + 0.3 + 1.0) / 3)
    trend = rep.get_reputation_trend(days=7)
    assert trend["samples"] == 3 and trend["end_score"] == rep.get_score()
    # the feedback is signed events by the genesis issuer about the subject
    feedback = [r for r in rep.ledger.stored() if r.type == "reputation.feedback"]
    assert len(feedback) == 3 and all(r.valid for r in feedback)


def test_reputation_stays_in_bounds_and_levels_follow_the_score() -> None:
    rep = Reputation()
    for _ in range(60):
        rep.update_score(success=True, quality=1.0)
    assert 0.9 < rep.get_score() <= 1.0 and rep.get_level() in ("high", "elite")
    low = Reputation(initial_score=0.3)
    for _ in range(40):
        low.add_negative_feedback(1.0)
    assert 0.0 <= low.get_score() < 0.2 and low.get_level() == "untrusted"
    predicted = low.predict_reputation_score([{"success": True, "quality": 1.0}] * 3)
    assert predicted > low.get_score()
    assert low.get_score() < 0.2  # prediction wrote nothing


def test_bad_reputation_input_raises_node_error_and_appends_nothing() -> None:
    rep = Reputation()
    before = rep.ledger.store.count()
    for attempt in (lambda: rep.update_score(True, quality=1.5), lambda: rep.update_score("yes"),  # type: ignore
                    lambda: rep.add_positive_feedback(0), lambda: rep.add_negative_feedback(float("inf")),
                    lambda: rep.predict_reputation_score([{"bogus": 1}]), lambda: rep.get_reputation_trend(0)):
        with pytest.raises(NodeError):
            attempt()
    assert rep.ledger.store.count() == before
    with pytest.raises(NodeError):
        Reputation(initial_score=2.0)
