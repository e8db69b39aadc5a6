"""``ledger_net.pricing.dynamic``: the seed API's path (``from src.pricing.dynamic import
PricingEngine``), kept as a re-export of :mod:`ledger_net.market.pricing`."""

from ..market.pricing import FORMULA_VERSION, MarketSnapshot, PricingEngine, PricingParams, Quote

__all__ = ["FORMULA_VERSION", "MarketSnapshot", "PricingEngine", "PricingParams", "Quote"]
