"""One error tree: the seed's five classes under a single root, narrower causes below them."""

from __future__ import annotations


class LedgerNetError(Exception):
    """Root of every error ledger_net raises on purpose."""


class NetworkError(LedgerNetError):
    """A peer, the HTTP layer or replication failed or refused."""


class PeerUnavailable(NetworkError):
    """A peer did not answer usefully: unreachable, too slow, or an answer too big or malformed
    (the HTTP API answers 502 for it)."""


class RefusedPeerURL(NetworkError):
    """A peer URL this node will not contact (its scheme, host or address is refused)."""


class TaskError(LedgerNetError):
    """A task is malformed, unknown, or cannot be run."""


class NodeError(LedgerNetError):
    """A node is misconfigured or in the wrong state for the request."""


class NodeLockedError(NodeError):
    """Another live process already runs this node (its data dir, or its key on this database)."""


class CreditError(LedgerNetError):
    """A credit operation would break the ledger's money rules."""


class InsufficientCredits(CreditError):
    """The account's spendable balance does not cover the amount (the HTTP API answers 402)."""


class SandboxError(LedgerNetError):
    """A sandbox cannot be set up or refused to run the code."""


class LedgerError(LedgerNetError):
    """An event or the log itself is malformed, forged or inconsistent."""


class EncodingError(LedgerError):
    """Content cannot be put into (or read from) canonical bytes."""


class SchemaError(LedgerError):
    """An event body does not match its type's schema."""


class UnknownEventType(SchemaError):
    """An event's type is none the schemas know."""


class SignatureError(LedgerError):
    """A hash or signature does not verify."""


class ChainError(LedgerError):
    """An event does not link into its author's chain (wrong seq/prev, wrong network)."""


class WrongNetwork(ChainError):
    """An event belongs to another network than this ledger's (or this ledger has none yet)."""


class ForkError(ChainError):
    """Two different events claim one (author, seq): an equivocation."""


class ProofError(LedgerError):
    """A Merkle proof does not verify, is malformed, or cannot be made for the sizes asked."""


class PendingLimitError(LedgerError):
    """The bounded buffer of events waiting for their causal past is full."""


__all__ = [
    "LedgerNetError",
    "NetworkError",
    "PeerUnavailable",
    "RefusedPeerURL",
    "TaskError",
    "NodeError",
    "NodeLockedError",
    "CreditError",
    "InsufficientCredits",
    "SandboxError",
    "LedgerError",
    "EncodingError",
    "SchemaError",
    "UnknownEventType",
    "SignatureError",
    "ChainError",
    "WrongNetwork",
    "ForkError",
    "PendingLimitError",
    "ProofError",
]
