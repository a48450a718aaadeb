"""Why the ledger refuses a command. The HTTP layer maps each to a status."""

from __future__ import annotations


class LedgerError(Exception):
    """A command the ledger refuses; `code` is stable and shown to clients."""

    code = "ledger-error"


class AccountNotFound(LedgerError):
    code = "account-not-found"


class AccountAlreadyExists(LedgerError):
    code = "account-exists"


class AccountClosedError(LedgerError):
    code = "account-closed"


class InsufficientFunds(LedgerError):
    code = "insufficient-funds"


class BalanceNotZero(LedgerError):
    code = "balance-not-zero"


class UnknownCurrency(LedgerError):
    code = "unknown-currency"


class CurrencyMismatch(LedgerError):
    code = "currency-mismatch"


class SameAccountTransfer(LedgerError):
    code = "same-account"


class AmountOutOfRange(LedgerError):
    code = "amount-out-of-range"
