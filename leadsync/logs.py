"""Structured JSON logs (structlog) on stderr, with secrets scrubbed before anything is written.

The registry of known secrets here is the one the CLI's error messages are scrubbed with too.

Libraries that log through the standard ``logging`` module (APScheduler, alembic, urllib3) go through the
same JSON renderer and the same scrubber, so that a daemon's stderr is one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote, quote_plus

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key|session_id|assertion)", re.I)
_SECRET_VALUES = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|((?:access_token|client_secret|password)=)[^&\s]+")
#: exact secret values known to this process (tokens, database passwords): scrubbed wherever they appear
_known_secrets: set[str] = set()
_known_lock = threading.Lock()
#: the same, longest first (replaced whole, so that scrubbing never iterates a set another thread grows)
_ordered: tuple[str, ...] = ()
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


def _forms(value: str) -> set[str]:
    """The shapes a secret takes in text: as given, stripped, escaped as Python or JSON would print it
    (``hs-x\\n``, ``b'Bearer hs-x\\n'``) and percent-encoded (in a URL)."""
    forms: set[str] = set()
    for form in (value, value.strip()):
        forms |= {
            form,
            repr(form)[1:-1],
            repr(form.encode("utf-8"))[2:-1],
            json.dumps(form)[1:-1],
            quote(form, safe=""),
            quote_plus(form, safe=""),
        }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def register_secret(value: str | None) -> None:
    """Redact this value, in each of its shapes, from every log line and CLI message from now on.

    Key names and ``Bearer ...`` patterns catch most leaks; this one registry catches a secret quoted
    verbatim inside an exception message or a URL. Values shorter than :data:`MIN_SECRET_LENGTH` (stripped)
    are ignored: they would redact ordinary words.
    """
    global _ordered
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        with _known_lock:
            _known_secrets.update(_forms(value))
            _ordered = tuple(sorted(_known_secrets, key=len, reverse=True))


def scrub(text: str) -> str:
    """``text`` with every known secret and every ``Bearer``/``access_token=`` value redacted."""
    text = _SECRET_VALUES.sub(lambda m: (m.group(1) or m.group(3) or "") + "[redacted]", text)
    for secret in _ordered:  # longest first: a secret's raw form before the shorter forms inside it
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
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
    import structlog  # here, not at the top: scrubbing an error message (`fail`) needs none of structlog

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
