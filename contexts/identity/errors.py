"""Why the identity context refuses a command. The HTTP layer maps each to a status."""

from __future__ import annotations


class IdentityError(Exception):
    code = "identity-error"


class UserAlreadyExists(IdentityError):
    code = "user-exists"


class UserNotFound(IdentityError):
    code = "user-not-found"


class UnknownRole(IdentityError):
    code = "unknown-role"


class UnknownScope(IdentityError):
    code = "unknown-scope"


class ApiKeyNotFound(IdentityError):
    code = "api-key-not-found"
