"""The seed API's import path for pricing, ``ledger_net.pricing.dynamic`` (the seed's
``from src.pricing.dynamic import PricingEngine``): a re-export of :mod:`ledger_net.market.pricing`,
where pricing lives beside routing. New code imports from ``ledger_net.market``."""

from ..market.pricing import FORMULA_VERSION, MarketSnapshot, PricingEngine, PricingParams, Quote

__all__ = ["FORMULA_VERSION", "MarketSnapshot", "PricingEngine", "PricingParams", "Quote"]
