"""The identity routes of the command API: one module per concern, listed here once."""

from command_api.identity.routes.api_keys import create_api_key, revoke
from command_api.identity.routes.login import login
from command_api.identity.routes.password import change_password
from command_api.identity.routes.refresh import logout, refresh
from command_api.identity.routes.register import register
from command_api.identity.routes.roles import grant_role, revoke_role

ROUTES = [register, login, refresh, logout, change_password, create_api_key, revoke, grant_role, revoke_role]
