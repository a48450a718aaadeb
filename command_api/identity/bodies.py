"""Request bodies of the identity routes: refused at the edge unless well-formed."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from shared.auth.passwords import MAX_LENGTH
from shared.http.text import EMAIL, printable

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=EMAIL)]
# The strength rule is checked after decoding (422 with advice); this only bounds the work.
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LENGTH)]
RefreshToken = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RegisterBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {
        "email": "ada@example.com",
        "password": "correct horse battery staple 42",
        "display_name": "Ada",
    }

    email: Email
    password: Password
    display_name: Annotated[str, printable(max_length=100)]


class LoginBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {
        "email": "ada@example.com",
        "password": "correct horse battery staple 42",
    }

    email: Email
    password: Password


class RefreshBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {"refresh_token": "rt_Jb3kQ0xw8bT2mVnZ4pL6sR1uY9cE5hA7"}

    refresh_token: RefreshToken


class ChangePasswordBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {
        "current_password": "correct horse battery staple 42",
        "new_password": "a quieter ocean of violet lanterns 9",
    }

    current_password: Password
    new_password: Password


class CreateApiKeyBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {"name": "nightly export", "scopes": ["ledger:read"]}

    name: Annotated[str, printable(max_length=100)]
    scopes: Annotated[list[str], msgspec.Meta(min_length=1, max_length=10)]


class RoleBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {"role": "admin"}

    role: Annotated[str, printable(max_length=50)]
