"""ISO 4217 currency codes, from pycountry's copy of the standard."""

from __future__ import annotations

from functools import cache

import pycountry


@cache
def _codes() -> frozenset[str]:
    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


def is_known_currency(code: str) -> bool:
    return code in _codes()
