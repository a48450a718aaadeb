"""What every command route runs: decode, build the context, execute, answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Response

from command_api.execution.executor import CommandConflict, CommandExecutor, Decide, IdempotencyMismatch
from command_api.http_commands import command_context, read_command, to_response
from shared.auth.principal import Principal
from shared.auth.tokens import AccessTokenVerifier
from shared.http.auth import authenticate
from shared.http.problems import problem

BodyT = TypeVar("BodyT")
Plan = tuple[Sequence[UUID], Decide]


@dataclass(frozen=True, slots=True)
class CommandRuntime:
    """The one dependency of a command route.

    It authenticates too: a route with two async dependencies makes litestar
    start a task group per request, which cost more than the rest of the
    routing (profiled).
    """

    executor: CommandExecutor
    verifier: AccessTokenVerifier
    require_idempotency_key: bool = False

    async def handle(
        self,
        request: Request[Any, Any, Any],
        decoder: msgspec.json.Decoder[BodyT],
        plan: Callable[[BodyT, Principal], Plan],
    ) -> Response[bytes]:
        principal = authenticate(request, self.verifier)
        body, raw = await read_command(request, decoder)
        context = command_context(request, principal, raw, key_required=self.require_idempotency_key)
        stream_ids, decide = plan(body, principal)
        try:
            answer = await self.executor.execute(context, stream_ids, decide)
        except IdempotencyMismatch as error:
            raise problem(422, str(error), type_="/problems/idempotency-key-reused") from error
        except CommandConflict as error:
            raise problem(409, str(error), type_="/problems/concurrent-update") from error
        return to_response(answer)
