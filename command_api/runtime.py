"""What every command route runs: authenticate, decode, build the context, execute, answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Response

from command_api.execution.executor import (
    CommandConflict,
    CommandContext,
    CommandExecutor,
    Decide,
    IdempotencyMismatch,
)
from command_api.http_commands import command_context, read_command, to_response
from command_api.metrics import COMMANDS, REPLAYS
from shared.auth.principal import LEDGER_WRITE, Principal
from shared.http.auth import Authenticator
from shared.http.problems import problem
from shared.observability.tracing import Tracing

BodyT = TypeVar("BodyT")
Plan = tuple[Sequence[UUID], Decide]
# Whose idempotency keys an unauthenticated command (registration) shares:
# a replay still needs the identical body, password included.
ANONYMOUS: Final = "anonymous"


@dataclass(frozen=True, slots=True)
class CommandRuntime:
    """The one dependency of a command route.

    It authenticates too: a route with two async dependencies makes litestar
    start a task group per request, which cost more than the rest of the
    routing (profiled).
    """

    executor: CommandExecutor
    authenticator: Authenticator
    require_idempotency_key: bool = False
    tracing: Tracing | None = None

    async def handle(
        self,
        request: Request[Any, Any, Any],
        decoder: msgspec.json.Decoder[BodyT],
        plan: Callable[[BodyT, Principal], Plan],
        *,
        scope: str | None = LEDGER_WRITE,
        sessions_only: bool = False,
    ) -> Response[bytes]:
        principal = await self.authenticator.authenticate(request, scope=scope, sessions_only=sessions_only)
        body, raw = await read_command(request, decoder)
        return await self.run(request, principal.scope_key, raw, plan(body, principal))

    async def run(
        self, request: Request[Any, Any, Any], scope_key: str, fingerprinted: bytes, plan: Plan
    ) -> Response[bytes]:
        """Execute a planned command for `scope_key` (a principal's, or ANONYMOUS).

        `fingerprinted` is what makes two requests with one Idempotency-Key the
        same: the raw body, or less of it where the body holds a secret.
        """
        command = request.route_handler.handler_name
        key_required = self.require_idempotency_key
        if self.tracing is None:
            context = command_context(request, scope_key, fingerprinted, key_required=key_required)
            return await self._execute(command, context, plan)
        # The span of the append: its traceparent is stored with the events and goes on with them.
        with self.tracing.span(f"command {command}", command=command):
            traceparent = self.tracing.current_traceparent()
            context = command_context(
                request, scope_key, fingerprinted, key_required=key_required, traceparent=traceparent
            )
            return await self._execute(command, context, plan)

    async def _execute(self, command: str, context: CommandContext, plan: Plan) -> Response[bytes]:
        stream_ids, decide = plan
        try:
            answer = await self.executor.execute(context, stream_ids, decide)
        except IdempotencyMismatch as error:
            COMMANDS.labels(command, "422").inc()
            raise problem(422, str(error), type_="/problems/idempotency-key-reused") from error
        except CommandConflict as error:
            COMMANDS.labels(command, "409").inc()
            raise problem(409, str(error), type_="/problems/concurrent-update") from error
        COMMANDS.labels(command, str(answer.status)).inc()
        if answer.replayed:
            REPLAYS.labels(command).inc()
        return to_response(answer)
