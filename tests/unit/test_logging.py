"""Logging: JSON for machines, readable text for people, context on every line."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
import structlog

from shared.observability.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging is process-wide: a level left at warning would hide later tests' info lines."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_when_not_on_a_terminal() -> None:
    """Off a terminal each line is one JSON object with level, time and context."""
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        structlog.get_logger("test").info("hello", answer=42)
    finally:
        structlog.contextvars.clear_contextvars()
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["event"] == "hello"
    assert line["answer"] == 42
    assert line["request_id"] == "r-1"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_console_rendering_on_a_terminal() -> None:
    """On a terminal lines are rendered for reading, not as JSON."""
    out = _Terminal()
    configure_logging("info", "auto", stream=out)
    structlog.get_logger("test").info("hello")
    text = out.getvalue()
    assert "hello" in text
    assert not text.lstrip().startswith("{")


def test_stdlib_loggers_come_out_in_the_same_format() -> None:
    """A library logging through the stdlib produces the same JSON lines as our code."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("some.library").warning("library says %s", "hi")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["event"] == "library says hi"
    assert line["logger"] == "some.library"


def test_the_level_filters_lower_lines() -> None:
    """Lines below the configured level are dropped."""
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    structlog.get_logger("test").info("quiet")
    assert out.getvalue() == ""


def _fail_holding(secret: str) -> None:
    password = secret  # a local the traceback must not show
    raise ValueError("refused " + str(len(password)))


@pytest.mark.parametrize(("stream", "log_format"), [(io.StringIO, "json"), (_Terminal, "console")])
def test_a_traceback_shows_where_not_what_the_variables_held(
    stream: type[io.StringIO], log_format: str
) -> None:
    """Locals hold passwords, tokens and request headers: a logged exception keeps them out."""
    out = stream()
    configure_logging("info", log_format, stream=out)
    secret = f"secret-{uuid.uuid4().hex}"  # made at run time: rich shows source lines, rightly
    try:
        _fail_holding(secret)
    except ValueError:
        structlog.get_logger("test").exception("unhandled error")
    text = out.getvalue()
    assert "_fail_holding" in text  # the traceback is there
    assert "ValueError" in text
    assert secret not in text
