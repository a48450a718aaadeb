"""Health and metrics of a process that serves no HTTP of its own (the relay, the projectors).

A small litestar app on a port of the process's own: `GET /health/live`,
`GET /health/ready` (each dependency with its latency, and the process's lag)
and `GET /metrics`. It is served by uvicorn in a thread of its own, so that
uvicorn's signal handling never replaces the process's (it installs none off
the main thread); the probes run on the process's event loop, where its
clients live, so a process whose loop is stuck answers "not ready" rather
than a stale "ok".
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec
import structlog
import uvicorn
from litestar import Litestar, Response, get
from litestar.plugins.prometheus import PrometheusController
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from shared.http.health import DependencyCheck, Liveness, check_readiness
from shared.http.problems import PROBLEM_MEDIA_TYPE

T = TypeVar("T")
# What a process reports of how far behind it is: JSON-able, by name.
LagReport = Callable[[], Awaitable[Mapping[str, Any]]]

STOP_SECONDS: Final = 5.0
SAMPLE_SECONDS: Final = 5.0  # how often the lag gauges are refreshed between scrapes
_log = structlog.get_logger("ops")


class OpsServer:
    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        checks: Callable[[], Sequence[DependencyCheck]],
        lag: LagReport,
        timeout_seconds: float,
    ) -> None:
        self._name = name
        self._host = host
        self._port = port
        self._checks = checks
        self._lag = lag
        self._timeout = timeout_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def app(self) -> Litestar:
        @get("/health/live")
        async def live() -> Response[Any]:
            # Alive means the process's loop still runs its tasks, not only that this thread answers.
            try:
                await self._on_process_loop(asyncio.sleep(0))
            except TimeoutError:
                return Response(
                    {"status": "failed", "detail": f"the {self._name}'s event loop does not answer"},
                    status_code=HTTP_503_SERVICE_UNAVAILABLE,
                    media_type=PROBLEM_MEDIA_TYPE,
                )
            return Response(Liveness())

        @get("/health/ready")
        async def ready() -> Response[Any]:
            try:
                readiness, lag = await self._on_process_loop(self._report())
            except TimeoutError:
                body: dict[str, Any] = {
                    "status": "failed",
                    "detail": f"the {self._name} did not answer within {self._timeout:g}s",
                }
                return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE, media_type=PROBLEM_MEDIA_TYPE)
            body = {**msgspec.to_builtins(readiness), "lag": dict(lag)}
            if readiness.status == "ok":
                return Response(body, status_code=HTTP_200_OK)
            failed = ", ".join(name for name, result in readiness.checks.items() if result.status != "ok")
            body |= {"title": "Service Unavailable", "detail": f"dependencies not ready: {failed}"}
            return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE, media_type=PROBLEM_MEDIA_TYPE)

        return Litestar(
            route_handlers=[live, ready, PrometheusController], openapi_config=None, logging_config=None
        )

    async def _report(self) -> tuple[Any, Mapping[str, Any]]:
        readiness, lag = await asyncio.gather(check_readiness(self._checks(), self._timeout), self._lag())
        return readiness, lag

    async def _on_process_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on the process's loop, where its clients live; TimeoutError when it does not answer."""
        if self._loop is None:
            raise RuntimeError("the ops server was not started")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout * 2)
        except TimeoutError:
            future.cancel()
            raise

    @contextlib.asynccontextmanager
    async def serving(self, sample_seconds: float = SAMPLE_SECONDS) -> AsyncIterator[None]:
        """The endpoints while the block runs (none when the port is 0), and the lag sampled
        meanwhile, so that the gauges it sets are fresh for a scrape."""
        sampler = asyncio.create_task(_sample(self._lag, sample_seconds), name=f"{self._name}-lag-sampler")
        if self._port:
            self.start()
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            await self.stop()

    def start(self) -> None:
        """Serve from a thread of its own; the probes run on the calling (running) loop."""
        self._loop = asyncio.get_running_loop()
        config = uvicorn.Config(
            self.app(),
            host=self._host,
            port=self._port,
            # A plain asyncio loop in this thread: "auto" would install uvloop's policy process-wide.
            loop="asyncio",
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"{self._name}-ops", daemon=True)
        self._thread.start()
        _log.info(
            "ops endpoints",
            url=f"http://{self._host}:{self._port}",
            paths="/health/live /health/ready /metrics",
        )

    async def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, STOP_SECONDS)


async def _sample(lag: LagReport, every_seconds: float) -> None:
    while True:
        try:
            await lag()
        except Exception as error:  # noqa: BLE001 - a failed sample leaves the gauges as they were
            _log.debug("lag sample failed", error=repr(error))
        await asyncio.sleep(every_seconds)  # a sampling period, not a wait for a condition
