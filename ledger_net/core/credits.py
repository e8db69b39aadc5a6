"""The seed's `Credits`: a node's account, every change a signed ledger event.

Names and keys. Ledger accounts are ed25519 public keys (a node id is its key in
hex). The seed also names recipients with free strings ("node-002"). A transfer
to such a name cannot be credited to a key (anyone could claim the name), and
must not vanish either, so it becomes a *voucher*: the amount leaves the
sender's balance into a voucher held in the ledger under that name; only the
sender can later settle it to a key it has verified belongs to the name
(`settle_voucher`) or take it back (`reclaim_voucher`). No credit is lost in
limbo; no squatter can claim one. Transfers to a key are ordinary transfers,
spendable by the recipient once its chain acknowledges them (`receive_incoming`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ..errors import CreditError, InsufficientCredits, LedgerError
from ..ledger.chain import Ledger, RuleViolation
from ..ledger.events import Event
from ..ledger.identity import is_public_key
from ..ledger.rules import INSUFFICIENT_BALANCE
from ..projections.rows import AccountColumn
from ..projections.runner import ProjectionRunner
from ..projections.tables import credit_history
from .money import to_credits, to_units
from .private_ledger import private_network

MAX_NAME = 128


def refused(exc: RuleViolation) -> CreditError:
    """The CreditError for a money event the ledger refused: `InsufficientCredits` when the
    balance does not cover it (the rules say so in their reason), so callers catch it by type."""
    text = str(exc)
    return InsufficientCredits(text) if text.startswith(INSUFFICIENT_BALANCE) else CreditError(text)



@dataclass
class CreditTransaction:
    """One change of an account, as the history projection recorded it."""

    transaction_id: str  # hash of the event that made the change
    type: str  # minted, burned, transfer_out, transfer_received, escrow_locked, task_payment_received, …
    amount: float  # credits moved (always positive; see `delta` for the direction)
    delta: float  # change of the spendable balance
    timestamp: float  # the author's clock, seconds (informative)
    from_node: str | None
    to_node: str | None
    reason: str | None = None
    task_id: str | None = None
    balance_after: float = 0.0
    units: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Credits:
    """Balance, transfers and history of one account of the ledger."""

    def __init__(self, initial_balance: float = 100.0, max_balance: float = 10000.0, min_transfer: float = 0.1,
                 *, ledger: Ledger | None = None, runner: ProjectionRunner | None = None) -> None:
        if (ledger is None) != (runner is None):
            raise CreditError("pass both ledger and runner, or neither")
        if ledger is None:
            ledger, runner = private_network("credits")
        assert runner is not None
        self.ledger, self.runner = ledger, runner
        self.decimals = ledger.state.decimals
        self.max_balance_units = to_units(max_balance, self.decimals, what="max_balance")
        self.min_transfer_units = to_units(min_transfer, self.decimals, what="min_transfer")
        if self.max_balance_units <= 0 or self.min_transfer_units <= 0:
            raise CreditError("max_balance and min_transfer must be positive")
        self.max_balance = max_balance
        self.min_transfer = min_transfer
        initial = to_units(initial_balance, self.decimals, what="initial_balance")
        if initial < 0 or initial > self.max_balance_units:
            raise CreditError(f"initial_balance must be between 0 and max_balance ({max_balance})")
        if initial and self.balance_units() == 0 and self.is_issuer:
            self._append("credit.minted", {"to": self.node_id, "amount": initial, "reason": "initial_balance"})

    # ---------------------------------------------------------------- basics
    @property
    def node_id(self) -> str:
        return self.ledger.node_id

    @property
    def is_issuer(self) -> bool:
        return self.node_id in self.ledger.state.issuers

    def balance_units(self) -> int:
        return self.ledger.state.spendable(self.node_id)

    def _units(self, amount: Any) -> int:
        units = to_units(amount, self.decimals)
        if units <= 0:
            raise CreditError(f"amount must be positive, got {amount}")
        return units

    def _append(self, type_: str, body: dict[str, Any], deps: tuple[str, ...] = ()) -> Event:
        try:
            return self.ledger.append(type_, body, deps)
        except RuleViolation as exc:
            raise refused(exc) from None
        except LedgerError as exc:
            raise CreditError(f"the ledger refused the operation: {exc}") from None

    # ---------------------------------------------------------------- balance
    def get_balance(self) -> float:
        """Spendable credits (incoming credits count once received)."""
        return to_credits(self.balance_units(), self.decimals)

    def add_credits(self, amount: float, reason: str = "system") -> bool:
        """Mint credits to this account; only the genesis' issuer keys may."""
        units = self._units(amount)
        if not self.is_issuer:
            raise CreditError("only issuer keys named in the genesis may mint credits")
        if self.balance_units() + units > self.max_balance_units:
            raise CreditError(f"balance would exceed max_balance ({self.max_balance})")
        self._append("credit.minted", {"to": self.node_id, "amount": units, "reason": _reason(reason)})
        return True

    def remove_credits(self, amount: float, reason: str = "system") -> bool:
        """Burn credits from this account (they leave the supply, recorded as burnt)."""
        units = self._units(amount)
        if units > self.balance_units():
            raise InsufficientCredits(f"insufficient credits: balance {self.get_balance()}, asked to remove {amount}")
        self._append("credit.burned", {"amount": units, "reason": _reason(reason)})
        return True

    def transfer_credits(self, to_node: str, amount: float | str) -> bool:
        """Send credits to a node key, or to a name as a voucher (see the module doc). ``amount``
        may be a decimal string (the control API passes one through), read exactly by `to_units`."""
        self.send_credits(to_node, amount)
        return True

    def send_credits(self, to_node: str, amount: float | str) -> Event:
        """`transfer_credits`, returning the appended event: with concurrent appenders the
        ledger's head may already be someone else's event when this returns."""
        if not isinstance(to_node, str) or not to_node.strip() or len(to_node) > MAX_NAME:
            raise CreditError(f"recipient must be a node id or a name of 1..{MAX_NAME} characters")
        if to_node != to_node.strip() or any(ord(c) < 32 for c in to_node):
            raise CreditError("recipient must not have surrounding whitespace or control characters")
        units = self._units(amount)
        if units < self.min_transfer_units:
            raise CreditError(f"amount {amount} is below the minimum transfer of {self.min_transfer}")
        if to_node == self.node_id:
            raise CreditError("cannot transfer credits to oneself")
        if units > self.balance_units():
            raise InsufficientCredits(f"insufficient credits: balance {self.get_balance()}, transfer {amount}")
        if is_public_key(to_node):
            return self._append("credit.transfer", {"to": to_node, "amount": units})
        return self._append("credit.voucher_issued", {"name": to_node, "amount": units})

    def receive_incoming(self) -> int:
        """Acknowledge every open credit to this account; returns how many units arrived."""
        open_credits = self.ledger.state.open_credits_to(self.node_id)
        if not open_credits:
            return 0
        room = self.max_balance_units - self.balance_units()
        items, total = [], 0
        for source, units in open_credits:
            if total + units > room:
                continue  # stays incoming: accepting it would break max_balance
            items.append(("credit.received", {"source": source}, (source,)))
            total += units
        if items:
            try:
                self.ledger.append_batch(items)
            except LedgerError as exc:
                raise CreditError(f"could not receive credits: {exc}") from None
        return total

    # ---------------------------------------------------------------- vouchers
    def open_vouchers(self) -> list[dict[str, Any]]:
        return [{"voucher_id": h, "name": name, "amount": to_credits(units, self.decimals)}
                for h, (issuer, name, units) in self.ledger.state.vouchers.items() if issuer == self.node_id]

    def settle_voucher(self, voucher_id: str, to_node: str) -> bool:
        """Pay a voucher to the key this account has verified owns its name."""
        if not is_public_key(to_node):
            raise CreditError("a voucher is settled to a node id (hex public key)")
        self._append("credit.voucher_settled", {"voucher": voucher_id, "to": to_node})
        return True

    def reclaim_voucher(self, voucher_id: str) -> bool:
        """Take an unsettled voucher back into this account."""
        self._append("credit.voucher_settled", {"voucher": voucher_id, "to": None})
        return True

    # ---------------------------------------------------------------- history
    def get_transaction_history(self, limit: int = 100) -> list[CreditTransaction]:
        """This account's changes, newest first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise CreditError("limit must be a non-negative integer")
        self.runner.flush()
        stmt = (select(credit_history).where(credit_history.c.account == self.node_id)
                .order_by(credit_history.c.offset.desc(), credit_history.c.part.desc()).limit(limit))
        with self.ledger.store.engine.connect() as conn:
            return [self._transaction(row) for row in conn.execute(stmt).mappings()]

    def get_transaction_details(self, transaction_id: str) -> CreditTransaction | None:
        if not isinstance(transaction_id, str):
            raise CreditError("transaction_id must be an event hash")
        self.runner.flush()
        stmt = select(credit_history).where(credit_history.c.event_hash == transaction_id,
                                            credit_history.c.account == self.node_id)
        with self.ledger.store.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return self._transaction(row) if row else None

    def _transaction(self, row: Any) -> CreditTransaction:
        outgoing = row["delta"] < 0 or row["kind"] in ("task_paid",)
        me, other = row["account"], row["counterparty"]
        return CreditTransaction(
            transaction_id=row["event_hash"], type=row["kind"],
            amount=to_credits(row["amount"], self.decimals), delta=to_credits(row["delta"], self.decimals),
            timestamp=row["ts"] / 1000.0,
            from_node=me if outgoing else other, to_node=other if outgoing else me,
            reason=row["reason"], task_id=row["task_id"],
            balance_after=to_credits(row["balance_after"], self.decimals), units=row["amount"])

    # ---------------------------------------------------------------- analytics
    def get_credit_metrics(self) -> dict[str, Any]:
        acct = self.runner.balances.row_of(self.node_id)

        def units(key: AccountColumn) -> float:
            return to_credits(acct[key], self.decimals)

        supply = self.ledger.state.supply()
        return {
            "node_id": self.node_id,
            "balance": self.get_balance(),
            "escrow": units("escrow"),
            "incoming": units("incoming"),
            "vouchers": units("vouchers"),
            "total_earned": units("earned"),
            "total_spent": units("spent"),
            "total_sent": units("sent"),
            "total_received": units("received"),
            "minted": units("minted"),
            "burnt": units("burnt"),
            "total_transactions": self._history_count(),
            "max_balance": self.max_balance,
            "min_transfer": self.min_transfer,
            "network_supply": to_credits(supply["minted"] - supply["burnt"], self.decimals),
            "conservation_ok": self.ledger.state.conserved(),
        }

    def _history_count(self) -> int:
        self.runner.flush()
        with self.ledger.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(credit_history).where(
                credit_history.c.account == self.node_id)).scalar_one()

    def predict_credit_flow(self, days: int = 30) -> dict[str, Any]:
        """Project the balance `days` ahead from the average daily flow seen so far.

        The authors' clocks are informative only; so is this forecast."""
        if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
            raise CreditError("days must be a positive integer")
        history = self.get_transaction_history(limit=10_000)
        inflow = sum(t.delta for t in history if t.delta > 0)
        outflow = -sum(t.delta for t in history if t.delta < 0)
        span_days = max((time.time() - min(t.timestamp for t in history)) / 86400.0, 1.0) if history else 1.0
        net_daily = (inflow - outflow) / span_days
        balance = self.get_balance()
        return {
            "days": days,
            "current_balance": balance,
            "daily_inflow": inflow / span_days,
            "daily_outflow": outflow / span_days,
            "net_daily_flow": net_daily,
            "projected_balance": max(0.0, min(self.max_balance, balance + net_daily * days)),
            "observed_days": span_days,
            "sample_size": len(history),
        }


def _reason(reason: Any) -> str:
    if not isinstance(reason, str) or len(reason) > 4096:
        raise CreditError("reason must be a string of at most 4096 characters")
    return reason
