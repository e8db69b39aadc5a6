"""Credits at the API edge: decimals in and out, integers of the base unit inside.

The base unit is 10**-decimals of a credit (decimals = 6 unless the genesis says
otherwise). Amounts are converted through `Decimal(str(x))`, so 0.1 is exactly
100_000 units and anything finer than the base unit is refused, never rounded.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import CreditError


def to_units(amount: Any, decimals: int = 6, *, what: str = "amount") -> int:
    """A user-given credit amount as an integer of base units (may be zero or negative)."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float, Decimal, str)):
        raise CreditError(f"{what} must be a number, got {type(amount).__name__}")
    if isinstance(amount, float) and not math.isfinite(amount):
        raise CreditError(f"{what} must be finite, got {amount}")
    try:
        value = Decimal(str(amount)) * (10 ** decimals)
    except InvalidOperation:
        raise CreditError(f"{what} {amount!r} is not a number") from None
    if not value.is_finite():
        raise CreditError(f"{what} must be finite, got {amount}")
    if value != value.to_integral_value():
        raise CreditError(f"{what} {amount} has more than {decimals} decimal places")
    return int(value)


def to_credits(units: int, decimals: int = 6) -> float:
    """Base units shown as a float of credits (display only; never signed)."""
    return units / (10 ** decimals)
