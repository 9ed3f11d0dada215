"""Rule ``regex`` tests run on text the CRM supplies (job titles, URLs), so they run on RE2, whose matching
time is linear in the text: a pattern such as ``(a+)+$`` cannot backtrack catastrophically on a hostile
1 MB title the way it does in Python's ``re``.

RE2 has no backreferences or lookaround; a pattern that needs them is refused when the rules load, with
RE2's reason, rather than silently run on the backtracking engine.
"""

from __future__ import annotations

from typing import Protocol

import re2

#: how RE2 words a refusal of a backtracking-only construct (a backreference, lookahead, lookbehind)
_UNSUPPORTED = (
    "invalid escape sequence: \\",
    "invalid perl operator: (?<",
    "invalid perl operator: (?=",
    "invalid perl operator: (?!",
)


class Pattern(Protocol):
    def search(self, text: str) -> object | None: ...


class RegexError(ValueError):
    """The pattern is not one RE2 accepts; the message says why, in RE2's words."""


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # RE2 would also print the error to stderr through absl logging
    # a rule pattern is a few hundred bytes; the default 8 MiB program budget is ample and bounds memory
    return options


def compile_rule_regex(pattern: str, *, ignore_case: bool = False) -> Pattern:
    """The compiled pattern of a rule's ``regex`` test; raises :class:`RegexError` for one RE2 refuses."""
    try:
        compiled: Pattern = re2.compile(pattern, _options(ignore_case))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        if text.startswith(_UNSUPPORTED):
            text += " (rules run on RE2, which has no backreferences or lookaround: they can take exponential time)"
        raise RegexError(text) from None
    return compiled
