"""ISO 4217 currency codes, from pycountry's copy of the standard."""

from __future__ import annotations

from functools import cache
from typing import Final

import pycountry

# In ISO 4217 but not money an account can hold: "no currency", the testing
# code, precious metals, and bond-market and IMF units of account.
NOT_ACCOUNT_CURRENCIES: Final = frozenset(
    {"XXX", "XTS", "XAU", "XAG", "XPT", "XPD", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA"}
)


@cache
def _codes() -> frozenset[str]:
    return frozenset(currency.alpha_3 for currency in pycountry.currencies) - NOT_ACCOUNT_CURRENCIES


def is_known_currency(code: str) -> bool:
    return code in _codes()
