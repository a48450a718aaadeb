"""Liveness and readiness endpoints shared by every HTTP process.

Readiness runs each dependency check concurrently under one timeout and names
the ones that failed, so an operator sees at once which server is the problem.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import msgspec
from litestar import Response, Router, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from shared.http.openapi import ANSWER, describe_from_opt
from shared.http.problems import PROBLEM_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class DependencyCheck:
    name: str
    probe: Callable[[], Awaitable[None]]


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    latency_ms: float
    error: str | None = None


class Liveness(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {"status": "ok"}

    status: str = "ok"


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "status": "ok",
        "checks": {
            "postgres": {"status": "ok", "latency_ms": 0.61, "error": None},
            "redis": {"status": "ok", "latency_ms": 0.23, "error": None},
        },
    }

    status: str
    checks: dict[str, CheckResult]


class NotReady(msgspec.Struct, frozen=True, kw_only=True):
    """The 503 answer: a problem naming the dependencies that failed, with every check's result."""

    type: str
    title: str
    status: int
    detail: str
    checks: dict[str, CheckResult]


NOT_READY_EXAMPLE: Final = {
    "type": "about:blank",
    "title": "Service Unavailable",
    "status": 503,
    "detail": "dependencies not ready: postgres",
    "checks": {
        "postgres": {"status": "failed", "latency_ms": 2000.4, "error": "no answer within 2s"},
        "redis": {"status": "ok", "latency_ms": 0.23, "error": None},
    },
}


async def _run_check(check: DependencyCheck, limit_seconds: float) -> CheckResult:
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(check.probe(), timeout=limit_seconds)
    except TimeoutError:
        error = f"no answer within {limit_seconds:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not ready", and is reported
        error = type(exc).__name__
    latency = round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(status="ok" if error is None else "failed", latency_ms=latency, error=error)


async def check_readiness(checks: Sequence[DependencyCheck], limit_seconds: float) -> Readiness:
    results = await asyncio.gather(*(_run_check(check, limit_seconds) for check in checks))
    by_name = {check.name: result for check, result in zip(checks, results, strict=True)}
    ok = all(result.status == "ok" for result in results)
    return Readiness(status="ok" if ok else "failed", checks=by_name)


def health_router(checks_of: Callable[[State], Sequence[DependencyCheck]], timeout: float) -> Router:
    """`checks_of` reads the checks from app state: the clients exist only once the lifespan ran."""

    @get("/live", summary="The process runs", sync_to_thread=False, opt={ANSWER: Liveness})
    def live() -> Liveness:
        return Liveness()

    @get(
        "/ready",
        summary="Every dependency answers",
        description="200 when every server this process uses answers; else 503 naming the ones that failed.",
        opt={ANSWER: Readiness},
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                data_container=NotReady,
                description="A dependency failed",
                media_type=PROBLEM_MEDIA_TYPE,
                generate_examples=False,
                examples=[Example(value=NOT_READY_EXAMPLE)],
            )
        },
    )
    async def ready(state: State) -> Response[Any]:
        readiness = await check_readiness(checks_of(state), timeout)
        if readiness.status == "ok":
            return Response(readiness, status_code=HTTP_200_OK)
        failed = ", ".join(name for name, result in readiness.checks.items() if result.status != "ok")
        body = {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": HTTP_503_SERVICE_UNAVAILABLE,
            "detail": f"dependencies not ready: {failed}",
            "checks": msgspec.to_builtins(readiness.checks),
        }
        return Response(
            body,
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            media_type=PROBLEM_MEDIA_TYPE,
        )

    for handler in (live, ready):
        describe_from_opt(handler)
    return Router(
        path="/health",
        route_handlers=[live, ready],
        tags=["health"],
        include_in_schema=True,
    )
