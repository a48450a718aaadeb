"""Process-wide logging: structlog for our lines, stdlib routed through it.

JSON when stderr is not a terminal (collectors parse it), a readable console
rendering when it is. Context (request id, correlation id, ...) comes from
contextvars, bound at the start of each request or message.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import Processor

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_json_encoder = msgspec.json.Encoder()


def _serialize(event: Any, **_: Any) -> str:
    # msgspec is several times faster than json.dumps on the canonical request line.
    return _json_encoder.encode(event).decode()


def wants_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


def _console_tracebacks() -> structlog.typing.ExceptionRenderer:
    if importlib.util.find_spec("rich") is None:
        return structlog.dev.plain_traceback
    return structlog.dev.RichTracebackFormatter(show_locals=False)


def configure_logging(level: str = "info", log_format: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger once, at process start."""
    out = stream if stream is not None else sys.stderr
    as_json = wants_json(log_format, out)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # A traceback's local variables hold request headers, passwords and tokens: never logged.
    renderer: Processor
    if as_json:
        shared.append(ExceptionRenderer(ExceptionDictTransformer(show_locals=False)))
        renderer = structlog.processors.JSONRenderer(serializer=_serialize)
    else:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=_console_tracebacks())

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Lines below the level are dropped before any processor runs: the canonical
        # request line costs nothing where it is not wanted.
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # Chatty libraries: their INFO lines repeat what our canonical lines say.
    for name in ("sqlalchemy.engine", "alembic.runtime.migration", "nats"):
        logging.getLogger(name).setLevel(max(_LEVELS[level], logging.WARNING))
