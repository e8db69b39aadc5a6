"""The log: identity → encoding → events → rules → store → chain."""

from .chain import Applied, IngestReport, Ledger, RuleViolation
from .events import Event
from .identity import Identity
from .rules import LedgerState
from .store import Store

__all__ = ["Applied", "Event", "Identity", "IngestReport", "Ledger", "LedgerState", "RuleViolation", "Store"]
