"""Structured JSON logs (structlog) on stderr, with secrets scrubbed before anything is written.

Libraries that log through the standard ``logging`` module (APScheduler, alembic, urllib3) go through the
same JSON renderer and the same scrubber, so that a daemon's stderr is one JSON object per line.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key|session_id|assertion)", re.I)
_SECRET_VALUES = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|((?:access_token|client_secret|password)=)[^&\s]+")
#: exact secret values known to this process (tokens, database passwords): scrubbed wherever they appear
_known_secrets: set[str] = set()
_known_lock = threading.Lock()
#: the handler configure_logging installed on the root logger (replaced when called again)
_handler: logging.Handler | None = None
#: shortest value register_secret accepts: shorter ones would redact ordinary words
MIN_SECRET_LENGTH = 6


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written (test runners and CLI runners swap it, then close it).

    structlog and the logging module write whole lines through one lock here, so that lines written by two
    threads at once never interleave into invalid JSON.
    """

    _lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            written = sys.stderr.write(text)
            sys.stderr.flush()
            return written

    def flush(self) -> None:
        with self._lock:
            sys.stderr.flush()


def register_secret(value: str | None) -> None:
    """Redact this exact value from every log line from now on (belt and braces for tokens and passwords).

    Key names and ``Bearer ...`` patterns catch most leaks; this catches a secret quoted verbatim inside
    an exception message or a URL. Values shorter than :data:`MIN_SECRET_LENGTH` are ignored.
    """
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _known_lock:
            _known_secrets.add(value)


def _scrub_text(text: str) -> str:
    text = _SECRET_VALUES.sub(lambda m: (m.group(1) or m.group(3) or "") + "[redacted]", text)
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {k: "[redacted]" if _SECRET_KEYS.search(str(k)) else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def scrub_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a token reach a log line, whatever key, message, nested value or traceback it hides in."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        else:
            event[key] = _scrub_value(value)
    return event


def configure_logging(level: str = "warning") -> None:
    """JSON lines on stderr; stdout stays free for command output such as ``--json``. Safe to call again."""
    global _handler
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(_CurrentStderr())
    _handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # records from the logging module: same fields, same scrubbing, same JSON as structlog's own
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                timestamper,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                scrub_secrets,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root.addHandler(_handler)
    root.setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            # after format_exc_info, so that a traceback is scrubbed too
            structlog.processors.format_exc_info,
            scrub_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # WriteLogger writes line and newline in one call (PrintLogger's print() makes two)
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
