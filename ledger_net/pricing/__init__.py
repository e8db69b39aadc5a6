"""Pricing: per-chunk prices from the market the projections show (see ``dynamic``)."""

from .dynamic import FORMULA_VERSION, MarketSnapshot, PricingEngine, PricingParams, Quote

__all__ = ["FORMULA_VERSION", "MarketSnapshot", "PricingEngine", "PricingParams", "Quote"]
