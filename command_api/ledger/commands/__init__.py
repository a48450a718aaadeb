"""The ledger's command routes: one module per command, listed here once."""

from command_api.ledger.commands.close_account import close_account
from command_api.ledger.commands.deposit import deposit
from command_api.ledger.commands.open_account import open_account
from command_api.ledger.commands.transfer import transfer
from command_api.ledger.commands.withdraw import withdraw

ROUTES = [open_account, deposit, withdraw, transfer, close_account]
