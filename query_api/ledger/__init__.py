"""The ledger's read routes: accounts and their entries."""

from __future__ import annotations

from query_api.ledger.accounts import get_account, list_accounts
from query_api.ledger.entries import list_entries

ROUTES = [get_account, list_accounts, list_entries]
