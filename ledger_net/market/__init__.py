"""The market: what a chunk costs (``pricing``) and who runs it (``routing``).

Both are pure functions of what the projections show, so every peer re-derives a quote or a
choice of workers from the ledger alone. This package sits above ``core`` (tasks, node
capabilities) and below the consumers that act on its answers (``execution``, ``main``).
"""

from .pricing import FORMULA_VERSION, MarketSnapshot, PricingEngine, PricingParams, Quote
from .routing import Assignment, Bid, Router, assigned_counts, bids_from_quotes, score

__all__ = ["FORMULA_VERSION", "Assignment", "Bid", "MarketSnapshot", "PricingEngine", "PricingParams", "Quote",
           "Router", "assigned_counts", "bids_from_quotes", "score"]
