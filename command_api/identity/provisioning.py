"""Creating users outside HTTP (the first admin, demo data) through the same command path."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from uuid import UUID

import msgspec

from command_api.app import password_service
from command_api.execution.executor import CommandContext, CommandExecutor
from command_api.identity.registration import registration_plan
from command_api.settings import CommandApiSettings
from contexts.catalogue import REGISTRY
from shared.auth.passwords import PasswordService, password_problems
from shared.infrastructure.event_store import PostgresEventStore
from shared.infrastructure.postgres import PoolSettings, open_pool


class ProvisioningRefused(Exception):
    """The user cannot be created as asked; the message says why."""


class EmailTaken(ProvisioningRefused):
    """A user with this email address exists."""


class _Created(msgspec.Struct):
    user_id: UUID


async def create_user(
    executor: CommandExecutor,
    passwords: PasswordService,
    *,
    email: str,
    password: str,
    display_name: str,
    extra_roles: tuple[str, ...] = (),
) -> UUID:
    """Register a user (with extra roles, such as admin) exactly as POST /v1/auth/register would."""
    weaknesses = password_problems(password, user_inputs=(email, display_name))
    if weaknesses:
        raise ProvisioningRefused("the password is too weak: " + "; ".join(weaknesses))
    stream_ids, decide = registration_plan(
        email, display_name, await passwords.hash(password), extra_roles=extra_roles
    )
    context = CommandContext(
        principal="operator",
        fingerprint=b"",
        idempotency_key=None,
        correlation_id=str(uuid.uuid4()),
        causation_id="cqrs-cli",
    )
    answer = await executor.execute(context, stream_ids, decide)
    if answer.status == HTTPStatus.CONFLICT:
        raise EmailTaken("a user with this email address exists")
    if answer.status != HTTPStatus.CREATED:
        raise ProvisioningRefused(f"registration refused ({answer.status}): {answer.body.decode()}")
    return msgspec.json.decode(answer.body, type=_Created).user_id


@asynccontextmanager
async def provisioning(
    settings: CommandApiSettings,
) -> AsyncIterator[tuple[CommandExecutor, PasswordService]]:
    """An executor and password service on a small pool of their own, for CLI work."""
    pool_settings = PoolSettings(
        url=settings.database_url,
        application_name="cqrs-cli",
        size=2,
        connect_timeout_seconds=settings.database_connect_timeout_seconds,
        command_timeout_seconds=settings.database_command_timeout_seconds,
    )
    async with open_pool(pool_settings) as pool:
        store = PostgresEventStore(pool, acquire_timeout_seconds=settings.database_connect_timeout_seconds)
        passwords = password_service(settings)
        try:
            yield CommandExecutor(store=store, registry=REGISTRY), passwords
        finally:
            passwords.close()
