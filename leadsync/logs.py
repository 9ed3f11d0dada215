"""Structured JSON logs (structlog) on stderr, with secrets scrubbed before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key|session_id|assertion)", re.I)
_SECRET_VALUES = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|((?:access_token|client_secret|password)=)[^&\s]+")


def _scrub_text(text: str) -> str:
    return _SECRET_VALUES.sub(lambda m: (m.group(1) or m.group(3) or "") + "[redacted]", text)


def scrub_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a token reach a log line, whatever key or message it hides in."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = _scrub_text(value)
    return event


def configure_logging(level: str = "warning") -> None:
    """JSON lines on stderr; stdout stays free for command output such as ``--json``."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            scrub_secrets,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
