"""ledger_net: a peer-to-peer compute network whose books are an event-sourced,
ed25519-signed, hash-chained ledger.

The public face re-exports the seed's API (see docs/ and the seed reference);
submodules keep the seed's import paths (`ledger_net.core.credits`, …).
"""

from .core.credits import Credits, CreditTransaction
from .core.reputation import Reputation
from .errors import CreditError, LedgerError, LedgerNetError, NetworkError, NodeError, SandboxError, TaskError
from .ledger import Event, Identity, Ledger, Store
from .projections import ProjectionRunner

__version__ = "0.1.0"

__all__ = [
    "CreditError",
    "CreditTransaction",
    "Credits",
    "Event",
    "Identity",
    "Ledger",
    "LedgerError",
    "LedgerNetError",
    "NetworkError",
    "NodeError",
    "ProjectionRunner",
    "Reputation",
    "SandboxError",
    "Store",
    "TaskError",
]
