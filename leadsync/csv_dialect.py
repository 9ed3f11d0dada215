"""How a CSV export is read: its delimiter (detected or forced), its encoding, and its null tokens.

The delimiter is chosen by parsing the first lines with each candidate (``,`` ``;`` tab ``|``) through the
same ``csv`` reader that reads the file, and keeping the one whose header has more than one column and whose
rows most often have the header's cell count (ties: the order above). ``csv.Sniffer`` was not used: it
guesses from character frequencies, so a ``;`` inside quoted text or a decimal comma can win over the real
delimiter, and it raises instead of answering on a one-column file; parsing is what reading will do.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from leadsync.config import (
    CSV_DELIMITERS,
    CSV_MAX_LINE_CHARS,
    DEFAULT_NULL_VALUES,
    CsvFileConfig,
    check_delimiter,
    check_encoding,
)

#: how much of the file the delimiter is detected from
SNIFF_BYTES = 64 * 1024
#: and at most this many of its lines
SNIFF_LINES = 50
_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}


class DialectError(ValueError):
    """The file cannot be read with the delimiter or encoding asked for: one message, exit 2."""


@dataclass(frozen=True)
class CsvDialect:
    """Everything needed to read one export: ``delimiter`` and ``encoding`` as resolved, ``nulls`` the cell
    texts (trimmed) that mean "no value"."""

    delimiter: str = ","
    encoding: str = "utf-8-sig"
    nulls: frozenset[str] = frozenset(DEFAULT_NULL_VALUES)
    detected: bool = False
    #: a longer line is reported on its own and skipped (``csv.max_line_chars``)
    max_line_chars: int = CSV_MAX_LINE_CHARS

    @property
    def delimiter_name(self) -> str:
        return _NAMES.get(self.delimiter, repr(self.delimiter))

    def is_null(self, cell: str) -> bool:
        return cell.strip() in self.nulls


def resolve(
    source: Path, options: CsvFileConfig, *, delimiter: str | None = None, encoding: str | None = None
) -> CsvDialect:
    """The dialect of ``source``: ``--delimiter`` / ``--encoding``, else the config's, else detected / utf-8.

    Raises DialectError for an unknown option value, undecodable text at the start of the file, or a forced
    delimiter that leaves a header of one column holding another delimiter.
    """
    try:
        chosen_delimiter = check_delimiter(delimiter) if delimiter is not None else options.delimiter
        chosen_encoding = check_encoding(encoding) if encoding is not None else options.encoding
    except ValueError as exc:
        raise DialectError(f"--{'delimiter' if delimiter is not None else 'encoding'}: {exc}") from None
    text_encoding = _with_bom(chosen_encoding or "utf-8")
    sample = _sample(source, text_encoding)
    lines = sample.splitlines(keepends=True)[:SNIFF_LINES]
    if chosen_delimiter is None:
        found = detect(lines)
        return CsvDialect(found or ",", text_encoding, options.nulls(), found is not None, options.max_line_chars)
    header = next(csv.reader(lines[:1], delimiter=chosen_delimiter), [])
    if len(header) == 1:
        other = next((d for d in CSV_DELIMITERS if d != chosen_delimiter and d in header[0]), None)
        if other is not None:
            flag = "tab" if other == "\t" else repr(other)
            raise DialectError(
                f"{source}: the header reads as one column with the delimiter {_NAMES[chosen_delimiter]}, but it "
                f"holds {_NAMES[other]}: the file looks delimited by {_NAMES[other]}; pass --delimiter "
                f"{flag} (or leave it out: it is detected)"
            )
    return CsvDialect(chosen_delimiter, text_encoding, options.nulls(), max_line_chars=options.max_line_chars)


def detect(lines: list[str]) -> str | None:
    """The delimiter of these first lines of a file, or None when every candidate gives one column."""
    best: tuple[int, int] | None = None
    chosen = None
    for delimiter in CSV_DELIMITERS:
        rows = [row for row in csv.reader(lines, delimiter=delimiter) if row]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(len(row) == width for row in rows[1:]), width)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _with_bom(encoding: str) -> str:
    """utf-8 reads a leading BOM as one (Excel writes it), not as part of the first column's name."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _sample(source: Path, encoding: str) -> str:
    try:
        with source.open("rb") as handle:
            raw = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise DialectError(f"{source}: cannot read: {exc.strerror or exc}") from None
    text = codecs.getincrementaldecoder(encoding)(errors="surrogateescape").decode(raw, final=False)
    _, bad = first_foreign_text(text, proven=False)
    if bad is not None:
        raise DialectError(not_text(source, text[:bad].count("\n") + 1, encoding))
    return text


#: a byte the encoding could not decode, as ``errors="surrogateescape"`` keeps it
UNDECODED = re.compile("[\udc80-\udcff]")


def first_foreign_text(text: str, *, proven: bool) -> tuple[bool, int | None]:
    """Whether the file has shown it is in its encoding (valid non-ASCII text read) after ``text``, and the
    offset of the first undecodable byte in ``text`` when that comes before any such proof (None: none).

    A file whose first non-ASCII text does not decode is in another encoding: the whole file is refused, with
    the likely fix. Once it has shown valid non-ASCII text, a line that does not decode is a line in another
    encoding among good ones (two exports pasted together): that line is rejected on its own.
    """
    found = UNDECODED.search(text)
    head = text if found is None else text[: found.start()]
    proven = proven or not head.isascii()
    return proven, (found.start() if found is not None and not proven else None)


def foreign_bytes(text: str, encoding: str) -> str | None:
    """Why a line read with ``errors="surrogateescape"`` is not text in ``encoding`` (None: it is)."""
    found = UNDECODED.search(text)
    if found is None:
        return None
    name = "utf-8" if encoding == "utf-8-sig" else encoding
    byte = ord(found.group()) - 0xDC00
    return (
        f"not valid {name} text (byte 0x{byte:02x} at column {found.start() + 1}) among lines that are: "
        "a line in another encoding? Re-save it, or read the file with --encoding"
    )


def not_text(source: Path | str, line: int, encoding: str) -> str:
    """The message for bytes that are not text in ``encoding``, with the likely fix."""
    name = "utf-8" if encoding == "utf-8-sig" else encoding
    return (
        f"{source}: line {line}: not valid {name} text; pass --encoding cp1252 (Excel on Windows) or latin-1 "
        "(or set csv.encoding in the config)"
    )


#: the wording of a form's "nothing chosen" value (matched trimmed, case-insensitively)
_PLACEHOLDER_WORDS = re.compile(
    r"^[\s\W_]*(please\s+)?(select|choose|pick)(\s+(one|an?\s+option|value))?[\s\W_]*$"
    r"|^[\s\W_]*(unknown|not\s+(specified|provided|available|known)|unspecified|\(?blank\)?|none\s+selected)[\s\W_]*$"
    r"|^\s*(-+|\?+|\.+)\s*$",
    re.IGNORECASE,
)
#: a placeholder is held by at least this share of a column's filled cells, in at least PLACEHOLDER_COLUMNS columns
PLACEHOLDER_SHARE = 0.01
PLACEHOLDER_COLUMNS = 2


def likely_placeholders(
    header: Sequence[str], rows: Sequence[Sequence[str]], nulls: Iterable[str]
) -> dict[str, list[str]]:
    """Cell texts that look like a form's "nothing chosen" (``Select``, ``-- choose --``, ``Unknown``, ``-``)
    and are frequent in several columns, each with the columns it was found in.

    Why both conditions: a shared value alone is no evidence (``No`` fills every yes/no column) and the
    wording alone is not either (one ``Unknown`` in a free-text column); together they are what a form's
    unanswered drop-down leaves in an export. Only the first rows given are looked at.
    """
    known = {n.strip() for n in nulls}
    found: dict[str, list[str]] = {}
    for i, column in enumerate(header):
        counts: dict[str, int] = {}
        filled = 0
        for row in rows:
            cell = row[i].strip() if i < len(row) else ""
            if cell in known:
                continue
            filled += 1
            if _PLACEHOLDER_WORDS.match(cell):
                counts[cell] = counts.get(cell, 0) + 1
        for cell, n in counts.items():
            if filled and n >= max(10, PLACEHOLDER_SHARE * filled):
                found.setdefault(cell, []).append(column)
    return {cell: columns for cell, columns in sorted(found.items()) if len(columns) >= PLACEHOLDER_COLUMNS}
