"""``leadsync score``: score a CSV file with the configured rules, no CRM involved.

Rows are read in chunks of columns by ``leadsync.csv_reader`` (pyarrow for clean blocks, the exact row
reader below for a block holding a malformed row), mapped by ``leadsync.csv_columns``, scored on the
columnar engine (``CompiledRules.score_batch``, no ``Score`` object per row) and written per chunk by
``csv_bytes``, so memory does not grow with the file; a malformed row is reported with its line number
and skipped while the rest are scored. A quoted field that never closes (it runs past the end
of the file or over more than ``max_record_lines`` lines) is a broken record: it is reported at the line it
starts on and skipped, and reading resumes on the next line, so one stray quote costs one row, not the rest
of the file. So is a record with more or fewer cells than the header. Every skipped record is counted and
can be copied to a rejects file; a value that does not parse as its mapped type costs that value only (the
attribute is missing for that lead, counted per column), unless ``strict``. The file's delimiter, encoding
and null tokens come from a ``CsvDialect`` (``leadsync.csv_dialect``). A regular output file appears
complete or not at all (written beside it, then renamed, also on SIGINT, SIGTERM and SIGHUP); a FIFO, a
character device or stdout is written to as a stream.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import signal
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from leadsync.config import CSV_MAX_LINE_CHARS
from leadsync.csv_dialect import UNDECODED, CsvDialect, first_foreign_text, foreign_bytes, not_text
from leadsync.csv_reader import Chunk, csv_chunks, read_ahead
from mappings import LeadMapping
from scoring import CompiledRules, Lead, ScoreColumns

#: what ``score`` adds to each row: ``points`` is the raw total (after part caps, before the 0..100 clamp)
OUTPUT_COLUMNS = ("score", "points", "fit", "engagement", "penalties", "grade", "qualified", "reasons")
#: the columns of ``--rejects``: where the record starts, why it was skipped, its text as read
REJECT_COLUMNS = ("line", "reason", "record")
#: how many line numbers the summary gives per column of coerced values
FIRST_LINES = 5
CHUNK = 5_000
#: a quoted field spanning more lines than this is taken for a stray quote (``--max-record-lines``)
MAX_RECORD_LINES = 20
#: signals that stop ``score`` cleanly (temporary file removed, exit 128 + the signal) instead of killing it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ScoreFileError(ValueError):
    """The input cannot be read or the output cannot be written: one message, exit 2."""


class Terminated(BaseException):
    """A stop signal arrived while writing; raised so that the temporary output file is removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RowProblem:
    line: int
    column: str | None
    problem: str

    def __str__(self) -> str:
        where = f"line {self.line}: column '{self.column}'" if self.column is not None else f"line {self.line}"
        return f"{where}: {self.problem}"


@dataclass
class Coerced:
    """Values of one column read as missing because they do not parse as the column's mapped type."""

    expected: str
    count: int = 0
    lines: list[int] = field(default_factory=list)  #: the first :data:`FIRST_LINES` of them
    examples: list[str] = field(default_factory=list)  #: their first distinct raw values


@dataclass
class ScoreFileResult:
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    broken_records: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    grades: dict[str, int] = field(default_factory=lambda: {"hot": 0, "warm": 0, "cold": 0})
    qualified: int = 0
    #: column -> values read as missing (unparsable for the mapped type)
    coerced: dict[str, Coerced] = field(default_factory=dict)

    def coerce_many(self, column: str, expected: str, lines: npt.NDArray[np.int64], raws: list[str]) -> None:
        """``coerce`` for many values of one column at once (their lines ascending)."""
        entry = self.coerced.setdefault(column, Coerced(expected))
        entry.count += len(raws)
        entry.lines.extend(lines[: max(FIRST_LINES - len(entry.lines), 0)].tolist())
        for raw in raws:
            if len(entry.examples) >= 3:
                break
            if raw not in entry.examples:
                entry.examples.append(raw)

    def coerce(self, line: int, column: str, raw: str, expected: str) -> None:
        entry = self.coerced.setdefault(column, Coerced(expected))
        entry.count += 1
        if len(entry.lines) < FIRST_LINES:
            entry.lines.append(line)
        if len(entry.examples) < 3 and raw not in entry.examples:
            entry.examples.append(raw)


#: how much of an overlong line is read at a time while it is skipped
_SKIP_CHARS = 1 << 20


class _Lines:
    """The file's physical lines, fed to ``csv.reader`` one at a time and numbered.

    The lines of the record being read are kept (at most ``limit`` of them), so that a broken record can be
    dropped and its other lines read again as records of their own. A hostile line is flagged (``flags``:
    line -> why) and its record rejected on its own: a NUL byte, bytes that are not text in the encoding
    among lines that are (see ``first_foreign_text``), or more than ``max_line`` characters (read past in
    pieces, never held whole: only a blank stands in for it).
    """

    def __init__(
        self,
        handle: IO[str],
        source: Path,
        limit: int,
        encoding: str = "utf-8",
        start: int = 1,
        *,
        max_line: int = CSV_MAX_LINE_CHARS,
    ) -> None:
        self._handle = handle
        self._source = source
        self._limit = limit
        self._encoding = encoding
        self._max_line = max_line
        self._pending: deque[tuple[int, str]] = deque()
        self._next_number = start
        self._proven = False
        self.record: list[tuple[int, str]] = []
        self.past_end = False  #: the reader asked for a line after the last one, inside a record
        self.over_limit = False  #: the reader asked for more than ``limit`` lines for one record
        self.flags: dict[int, str] = {}
        # a field may be as long as the longest record: csv's own default (128 KiB) would end the whole file
        csv.field_size_limit(max(csv.field_size_limit(), max_line * limit))

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if len(self.record) >= self._limit:
            self.over_limit = True
            raise StopIteration
        if self._pending:
            item = self._pending.popleft()
        else:
            text = self._read(self._max_line + 1)
            if not text:
                self.past_end = True
                raise StopIteration
            item = (self._next_number, self._screened(self._next_number, text))
            self._next_number += 1
        self.record.append(item)
        return item[1]

    def _read(self, size: int) -> str:
        try:
            return self._handle.readline(size)
        except OSError as exc:
            raise ScoreFileError(f"{self._source}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ScoreFileError(not_text(self._source, self._next_number, self._encoding)) from None

    def _screened(self, number: int, text: str) -> str:
        """The line as ``csv.reader`` gets it, its problem (if any) flagged in :attr:`flags`."""
        if not text.endswith(("\n", "\r")) and (more := self._read(self._max_line + 1)):
            skipped = len(text) + len(more)
            while not more.endswith(("\n", "\r")) and (more := self._read(_SKIP_CHARS)):
                skipped += len(more)
            self.flags[number] = (
                f"the line is {skipped:,} characters long, over the {self._max_line:,} a line may have "
                "(csv.max_line_chars): skipped without being read"
            )
            return "\n"
        if "\x00" in text:
            self.flags[number] = f"a NUL byte at column {text.index(chr(0)) + 1}: binary data, not text"
        foreign = UNDECODED.search(text) is not None
        self._proven, bad = first_foreign_text(text, proven=self._proven or getattr(self._handle, "proven", False))
        if bad is not None:
            raise ScoreFileError(not_text(self._source, number, self._encoding))
        if foreign:
            self.flags.setdefault(number, foreign_bytes(text, self._encoding) or "")
            return UNDECODED.sub("\ufffd", text)  # the rejects file shows where the bytes were
        return text

    @property
    def next_number(self) -> int:
        """The number of the next line read from the file (lines given back to be read again not counted)."""
        return self._next_number

    @property
    def at_boundary(self) -> bool:
        """No line is waiting to be read again: the next record starts at ``next_number``."""
        return not self._pending

    def start_record(self) -> None:
        self.record.clear()
        self.past_end = self.over_limit = False

    def reread_after_first(self) -> None:
        """Drop the first line of the record just read; its other lines come again."""
        self._pending.extendleft(reversed(self.record[1:]))


@dataclass
class _Record:
    line: int  #: the line the record starts on
    cells: list[str]
    broken: str | None = None  #: why the record is broken, None when it is sound
    raw: str = ""  #: its text as read (a broken record: its first line only, the others are read again)


def _records(lines: _Lines, columns: int | None, delimiter: str = ",") -> Iterator[_Record]:
    """The CSV records of ``lines``; a broken record is yielded (flagged) once and reading resumes after its first line.

    Broken: a quoted field still open at the end of the file, one spanning more lines than allowed, or a
    record spanning lines whose cell count differs from the header's (a stray quote that closed on a later
    quote). ``columns`` is the header's cell count (None while reading the header).
    """
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            if not lines.over_limit:
                return
            cells = []  # the reader gave up on the record at the limit
        if not lines.record:
            return
        start, span = lines.record[0][0], len(lines.record)
        broken = None
        flagged = next((n for n, _ in lines.record if n in lines.flags), None)
        if flagged is not None:
            broken = lines.flags.pop(flagged) if flagged == start else f"line {flagged}: {lines.flags[flagged]}"
        elif lines.over_limit:
            broken = f"a quoted field opened here is still open after {span} lines (the most a record may span)"
        elif lines.past_end:
            broken = "a quoted field opened here runs past the end of the file"
        elif span > 1 and columns is not None and len(cells) != columns:
            broken = (
                f"a record spanning lines {start}-{start + span - 1} has {len(cells)} cells, the header "
                f"{columns} (a stray quote?)"
            )
        if broken is not None:
            yield _Record(start, cells, broken, lines.record[0][1].rstrip("\r\n"))
            lines.reread_after_first()
            reader = csv.reader(lines, delimiter=delimiter)  # the old one is mid-record; start afresh
        elif cells:  # blank lines are not records
            yield _Record(start, cells, raw="".join(text for _, text in lines.record).rstrip("\r\n"))


class _Sink:
    """Passes writes on to the output; an OSError (full disk, closed pipe) becomes one message naming it."""

    def __init__(self, handle: IO[str], name: Path | str) -> None:
        self._handle = handle
        self._name = name

    def write(self, text: str) -> int:
        try:
            return self._handle.write(text)
        except OSError as exc:
            raise ScoreFileError(_cannot_write(self._name, exc)) from None

    def write_bytes(self, data: bytes) -> None:
        """UTF-8 text written as it is (the columnar writer's output), after what was written as text."""
        buffer = getattr(self._handle, "buffer", None)
        try:
            if buffer is None:
                self._handle.write(data.decode("utf-8"))
            else:
                self._handle.flush()
                buffer.write(data)
        except OSError as exc:
            raise ScoreFileError(_cannot_write(self._name, exc)) from None

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as exc:
            raise ScoreFileError(_cannot_write(self._name, exc)) from None


def _cannot_write(name: Path | str, exc: OSError) -> str:
    return f"{name}: cannot write the scored CSV: {exc.strerror or exc}"


@dataclass(frozen=True)
class OutputColumns:
    """Which columns the scored CSV gets: every input column, then the score columns (named ``prefix`` +
    column, or written over the input's own column of that name with ``replace``)."""

    prefix: str = ""
    replace: bool = False

    def names(self, source: Path, header: list[str]) -> dict[str, str]:
        """Score column -> its name in the output; a clash with an input column is a ScoreFileError."""
        names = {column: self.prefix + column for column in OUTPUT_COLUMNS}
        clashes = [name for name in names.values() if name in header]
        if clashes and not self.replace:
            hint = "choose another --output-prefix" if self.prefix else "pass --output-prefix P (e.g. leadsync_)"
            raise ScoreFileError(
                f"{source}: input column{'s' if len(clashes) > 1 else ''} {', '.join(repr(c) for c in clashes)} "
                f"would be overwritten by the score columns; {hint}, or --replace-columns to write over them"
            )
        return names


@dataclass
class Sample:
    """The header and the first records of a file (what ``check --input`` looks at)."""

    header: list[str]
    rows: list[list[str]]
    complete: bool  #: the whole file is in the sample


def read_sample(source: Path, dialect: CsvDialect, limit: int, max_record_lines: int = MAX_RECORD_LINES) -> Sample:
    """The header and up to ``limit`` sound records of ``source`` (broken ones are left to ``score_csv``)."""
    with _open_input(source, dialect) as handle:
        lines = _Lines(handle, source, max_record_lines, dialect.encoding, max_line=dialect.max_line_chars)
        header = _header(source, lines, dialect.delimiter)
        rows: list[list[str]] = []
        for record in _records(lines, len(header), dialect.delimiter):
            if len(rows) >= limit:
                return Sample(header, rows, complete=False)
            if record.broken is None and len(record.cells) == len(header):
                rows.append(record.cells)
        return Sample(header, rows, complete=True)


@contextmanager
def _open_input(source: Path, dialect: CsvDialect) -> Iterator[IO[str]]:
    try:
        # undecodable bytes are kept (as lone surrogates) for ``_Lines`` to reject their line on its own
        handle = source.open(newline="", encoding=dialect.encoding, errors="surrogateescape")
    except OSError as exc:
        raise ScoreFileError(f"{source}: cannot read: {exc.strerror or exc}") from None
    with handle:
        yield handle


def score_csv(
    source: Path,
    rules: CompiledRules,
    mapping: LeadMapping,
    output: IO[str] | Path | None,
    *,
    dialect: CsvDialect | None = None,
    now: datetime | None = None,
    on_problem: Callable[[RowProblem], None] | None = None,
    max_record_lines: int = MAX_RECORD_LINES,
    strict: bool = False,
    rejects: Path | None = None,
    columns: OutputColumns | None = None,
    annotate: Callable[[list[tuple[dict[str, str], Lead]]], list[dict[str, str]]] | None = None,
    annotated_columns: Sequence[str] = (),
    escape_formulas: bool = True,
) -> ScoreFileResult:
    """Score every row of ``source``; write input columns + score columns to ``output`` (see ``open_output``).

    ``strict``: a value that does not parse as its mapped type rejects its row instead of being read as
    missing. ``rejects``: every skipped record (line, reason, text) is written there, atomically as well.
    ``annotate`` adds ``annotated_columns`` to each chunk of rows (the active model's likelihood).
    ``escape_formulas``: cells a spreadsheet would run as formulas get a leading quote (``neutralise``).
    """
    if max_record_lines < 1:
        raise ValueError(f"max_record_lines: expected at least 1, got {max_record_lines}")
    now = now or datetime.now(UTC)
    dialect = dialect or CsvDialect()
    result = ScoreFileResult()
    with csv_chunks(source, dialect, max_record_lines) as (header, records):
        names = (columns or OutputColumns()).names(source, header)
        fieldnames = [*header, *(n for n in (*names.values(), *annotated_columns) if n not in header)]
        job = _Job(header, fieldnames, names, rules, mapping, dialect, now, result, on_problem, strict, escape_formulas)
        job.annotate = annotate
        with _rejects_output(rejects, dialect.delimiter) as rejected:
            if isinstance(output, Path):
                with open_output(output) as out:
                    job.run(read_ahead(records), out, rejected)
            elif output is not None:
                sink = _Sink(output, getattr(output, "name", "the output"))
                job.run(read_ahead(records), sink, rejected)
                sink.flush()
            else:
                job.run(read_ahead(records), None, rejected)
    return result


@contextmanager
def csv_records(
    source: Path, max_record_lines: int = MAX_RECORD_LINES, dialect: CsvDialect | None = None
) -> Iterator[tuple[list[str], Iterator[_Record]]]:
    """The header and the records of ``source`` as ``score`` reads them (a broken record is flagged, and
    reading goes on after it); shared by every command that reads a CSV of leads (``rules fit``)."""
    dialect = dialect or CsvDialect()
    with _open_input(source, dialect) as handle:
        lines = _Lines(handle, source, max_record_lines, dialect.encoding, max_line=dialect.max_line_chars)
        header = _header(source, lines, dialect.delimiter)
        yield header, _records(lines, len(header), dialect.delimiter)


@contextmanager
def _rejects_output(path: Path | None, delimiter: str) -> Iterator[Any]:
    """A csv writer of the rejected records (None without ``--rejects``), written like the scored CSV."""
    if path is None:
        yield None
        return
    with open_output(path) as sink:
        writer = csv.writer(sink, delimiter=delimiter)
        writer.writerow(REJECT_COLUMNS)
        yield writer


def _header(source: Path, lines: _Lines, delimiter: str = ",") -> list[str]:
    """The header row: it must be sound and name each column once (a repeated name would overwrite data)."""
    record = next(_records(lines, None, delimiter), None)
    if record is None:
        raise ScoreFileError(f"{source}: the file is empty (expected a header row)")
    if record.broken is not None:
        raise ScoreFileError(f"{source}: line {record.line}: the header row is broken: {record.broken}")
    first: dict[str, int] = {}
    for position, name in enumerate(record.cells, start=1):
        if name in first:
            raise ScoreFileError(
                f"{source}: line {record.line}: column '{name}' appears twice in the header (columns "
                f"{first[name]} and {position}); rename one, so that neither overwrites the other"
            )
        first[name] = position
    return record.cells


@contextmanager
def open_output(path: Path) -> Iterator[_Sink]:
    """Where the scored CSV goes: regular files (also through a symlink) atomically, FIFOs and devices as streams.

    A path through an open descriptor (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``) is a stream too,
    even when the descriptor is a regular file (a shell's ``>>`` must not be replaced). Any other kind of
    file (a directory, a socket, a block device) is refused: it is never replaced.
    """
    try:
        mode: int | None = os.stat(path).st_mode  # follows every link, /dev/stdout's included
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ScoreFileError(_cannot_write(path, exc)) from None
    if mode is not None and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or (stat.S_ISREG(mode) and _via_fd(path))):
        with _stream_output(path) as sink:
            yield sink
    elif mode is None or stat.S_ISREG(mode):
        with _atomic_output(path, Path(os.path.realpath(path)), mode) as sink:
            yield sink
    else:
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file, FIFO or character device"
        raise ScoreFileError(f"{path}: cannot write the scored CSV there: it is {kind}")


def _via_fd(path: Path) -> bool:
    """Whether ``path`` is, or links through, a file descriptor's name (/dev/fd/N, /dev/stdout, /proc/PID/fd/N)."""
    hop = Path(os.path.abspath(path))
    for _ in range(40):  # the kernel's own limit on a chain of links
        if hop.parent == Path("/dev/fd") or hop in _STD_NAMES or (hop.parts[1:2] == ("proc",) and "fd" in hop.parts):
            return True
        if not hop.is_symlink():
            return False
        hop = Path(os.path.abspath(hop.parent / os.readlink(hop)))
    return False


_STD_NAMES = frozenset(Path(f"/dev/{name}") for name in ("stdin", "stdout", "stderr"))


@contextmanager
def _stream_output(path: Path) -> Iterator[_Sink]:
    try:
        handle = path.open("a", newline="", encoding="utf-8")  # "a": never truncate what a descriptor holds
    except OSError as exc:
        raise ScoreFileError(_cannot_write(path, exc)) from None
    try:
        sink = _Sink(handle, path)
        yield sink
        sink.flush()
    finally:
        with suppress(OSError):  # the error that matters was raised by the write or flush above
            handle.close()


@contextmanager
def _atomic_output(path: Path, target: Path, replaced_mode: int | None) -> Iterator[_Sink]:
    """Write to a hidden file beside ``target`` and rename it into place only when complete.

    The new file gets the mode of the file it replaces, else the usual 0666 less the umask (not tempfile's
    0600); on any error or stop signal the hidden file is removed.
    """
    if not target.parent.exists():
        raise ScoreFileError(f"{path}: cannot write the scored CSV: the folder {target.parent} does not exist")
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    with _stop_signals_raise():
        try:  # the creation too: a stop signal right after it must still remove the file
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except OSError as exc:
                msg = f"{path}: cannot create a file in {target.parent}: {exc.strerror or exc}"
                raise ScoreFileError(msg) from None
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                if replaced_mode is not None:
                    os.fchmod(handle.fileno(), stat.S_IMODE(replaced_mode))
                sink = _Sink(handle, path)
                yield sink
                sink.flush()
                os.fsync(handle.fileno())  # complete on disk before it takes the target's name
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ScoreFileError(_cannot_write(path, exc)) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """While writing, a stop signal raises ``Terminated`` (cleanup runs) instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Job:
    """One scoring pass over the chunks: mapped to a ``LeadBatch``, scored on the columnar path, written out."""

    def __init__(
        self,
        header: list[str],
        fieldnames: list[str],
        names: dict[str, str],
        rules: CompiledRules,
        mapping: LeadMapping,
        dialect: CsvDialect,
        now: datetime,
        result: ScoreFileResult,
        on_problem: Callable[[RowProblem], None] | None,
        strict: bool,
        escape: bool = True,
    ) -> None:
        self.header = header
        self.fieldnames = fieldnames
        self.names = names
        self.rules = rules
        self.mapping = mapping
        self.dialect = dialect
        self.now = now
        self.result = result
        self.on_problem = on_problem
        self.strict = strict
        self.escape = escape
        self.annotate: Callable[[list[tuple[dict[str, str], Lead]]], list[dict[str, str]]] | None = None
        #: the mapped columns of this file: only their cells are checked for null tokens
        self.read = sorted({spec.property for spec in mapping.fields.values()} & set(header))

    def run(self, chunks: Iterator[Chunk], out: _Sink | None, rejected: Any) -> None:
        if out is not None:  # the input's delimiter: a ;-delimited export opens the same way scored
            csv.writer(out, delimiter=self.dialect.delimiter).writerow(
                [neutralise(name) if self.escape else name for name in self.fieldnames]
            )
        result = self.result
        for chunk in chunks:
            result.rows += chunk.n + len(chunk.rejects)
            result.broken_records += chunk.broken
            rejects = list(chunk.rejects)
            if chunk.n:
                rejects.extend(self._score_chunk(chunk, out))
            for record, problems in sorted(rejects, key=lambda item: item[0].line):
                self._reject(record, problems, rejected)

    def _score_chunk(self, chunk: Chunk, out: _Sink | None) -> list[tuple[_Record, list[RowProblem]]]:
        """Score the chunk's records and write them; the rows ``--strict`` rejects are returned instead."""
        from leadsync.csv_columns import chunk_batch

        result, lines = self.result, chunk.lines
        batch, bad = chunk_batch(
            dict(zip(self.header, chunk.cells, strict=True)), lines, self.mapping, self.dialect.nulls
        )
        keep = np.ones(chunk.n, dtype=np.bool_)
        rejects: list[tuple[_Record, list[RowProblem]]] = []
        if bad and self.strict:
            by_row: dict[int, list[RowProblem]] = {}
            for found in bad:
                for row, raw in zip(found.rows.tolist(), found.raws, strict=True):
                    problem = RowProblem(int(lines[row]), found.column, f"{found.problem}, got {raw!r} (--strict)")
                    by_row.setdefault(row, []).append(problem)
            for row in sorted(by_row):
                keep[row] = False
                rejects.append((_Record(int(lines[row]), [], raw=chunk.raw(row)), by_row[row]))
        else:
            for found in bad:
                result.coerce_many(found.column, found.problem.removeprefix("expected "), lines[found.rows], found.raws)
        scores = self.rules.score_batch(batch, self.now)
        kept = np.flatnonzero(keep)
        grades = np.bincount(scores.grade_codes[kept], minlength=3).tolist()
        for grade, count in zip(("cold", "warm", "hot"), grades, strict=True):
            result.grades[grade] = result.grades.get(grade, 0) + count
        result.scored += len(kept)
        result.qualified += int(scores.qualified[kept].sum())
        if out is not None:
            out.write_bytes(self._output(chunk, scores, kept, len(kept) < chunk.n))
        return rejects

    def _output(self, chunk: Chunk, scores: ScoreColumns, kept: npt.NDArray[np.int64], filtered: bool) -> bytes:
        """The chunk's kept rows as CSV text: input cells as read, then the score (and model) columns."""
        import pyarrow as pa
        import pyarrow.compute as pc

        codes, texts = scores.reasons()
        values, where = np.unique(scores.points, return_inverse=True)
        points = pc.take(pa.array([f"{x:g}" for x in values.tolist()], type=pa.string()), pa.array(where.reshape(-1)))
        generated: dict[str, Any] = {
            "score": pa.array(scores.total).cast(pa.string()),
            "points": points,
            "fit": pa.array(scores.fit).cast(pa.string()),
            "engagement": pa.array(scores.engagement).cast(pa.string()),
            "penalties": pa.array(scores.penalties).cast(pa.string()),
            "grade": pc.take(pa.array(["cold", "warm", "hot"]), pa.array(scores.grade_codes.astype(np.int64))),
            "qualified": pc.take(pa.array(["false", "true"]), pa.array(scores.qualified.astype(np.int64))),
            "reasons": pc.take(pa.array([self._safe(text) for text in texts], type=pa.string()), pa.array(codes)),
        }
        by_name = {self.names[k]: v for k, v in generated.items()}
        index = pa.array(kept)
        if filtered:
            by_name = {name: array.take(index) for name, array in by_name.items()}
        cells = dict(zip(self.header, (a.take(index) if filtered else a for a in chunk.cells), strict=True))
        if self.annotate is not None:
            from leadsync.csv_columns import as_text_rows

            rows = as_text_rows(chunk.cells, self.header, kept)
            pairs = [
                (row, self.mapping.to_lead(row.get("id") or f"line-{line}", self._values(row)))
                for row, line in zip(rows, chunk.lines[kept].tolist(), strict=True)
            ]
            extras = self.annotate(pairs)
            for name in self.fieldnames:
                if name not in by_name and name not in cells:
                    by_name[name] = pa.array([extra.get(name, "") for extra in extras], type=pa.string())
        columns = [by_name[name] if name in by_name else cells[name] for name in self.fieldnames]
        # input cells (and the model's) are scanned; the score columns are numbers and words, the reasons
        # neutralised above once per distinct text (they may still hold the delimiter)
        reasons = self.names["reasons"]
        plain = {name for name in by_name if name in self.names.values() and name != reasons}
        scan = [
            (name not in plain and (chunk.quoted or name not in cells), self.escape and name not in by_name)
            for name in self.fieldnames
        ]
        return csv_bytes(columns, self.dialect.delimiter, scan=scan)

    def _safe(self, text: str) -> str:
        return neutralise(text) if self.escape else text

    def _values(self, row: dict[str, str]) -> dict[str, str]:
        """The row as the mapping reads it: null tokens blank (the output keeps the cells as they were)."""
        nulls = self.dialect.nulls
        cleaned = None
        for column in self.read:
            if row[column].strip() in nulls and row[column]:
                cleaned = cleaned or dict(row)
                cleaned[column] = ""
        return cleaned or row

    def _reject(self, record: _Record, problems: list[RowProblem], rejected: Any) -> None:
        self.result.rejected += 1
        for problem in problems:
            self.result.problems.append(problem)
            if self.on_problem is not None:
                self.on_problem(problem)
        if rejected is not None:
            cells = [
                str(record.line),
                "; ".join(p.problem if p.column is None else f"column '{p.column}': {p.problem}" for p in problems),
                record.raw,
            ]
            rejected.writerow([neutralise(cell) for cell in cells] if self.escape else cells)


#: how a cell that a spreadsheet would run as a formula starts (OWASP, CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_RE2_FORMULA = r"^[=+\-@\t\r]"
_RE2_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def neutralise(cell: str) -> str:
    """``cell`` with a single quote before it when a spreadsheet would read it as a formula (OWASP's advice):
    it starts with = + - @ tab or carriage return and is not a plain number (-3, +1.5: the common false
    positive, which a spreadsheet reads as a number anyway, and a penalty's points are negative numbers)."""
    if cell.startswith(FORMULA_STARTS) and _PLAIN_NUMBER.fullmatch(cell) is None:
        return "'" + cell
    return cell


def csv_bytes(
    columns: Sequence[Any], delimiter: str, *, escape: bool = True, scan: Sequence[tuple[bool, bool]] | None = None
) -> bytes:
    """Rows of pyarrow string columns as UTF-8 CSV text, quoted as ``csv.writer`` quotes (a cell holding the
    delimiter, a quote or a line end; quotes doubled; lines end with CRLF), formulas neutralised (``escape``).

    Which cells need either is found on the columns' bytes with numpy; only those cells are rewritten.
    ``scan``: per column, (may need quoting, may be a formula), when the caller knows better than "both"."""
    import pyarrow as pa
    import pyarrow.compute as pc

    special = np.zeros(256, dtype=np.bool_)
    special[[ord(delimiter), 34, 13, 10]] = True
    starts = np.zeros(256, dtype=np.bool_)
    starts[[ord(c) for c in FORMULA_STARTS]] = True
    quoted = []
    for number, column in enumerate(columns):
        may_quote, may_be_formula = scan[number] if scan is not None else (True, escape)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        offsets, data = _offsets_and_data(column)
        if may_be_formula and len(data):
            first = data[np.minimum(offsets[:-1], len(data) - 1)]
            suspect = np.flatnonzero((offsets[1:] > offsets[:-1]) & starts[first])
            if len(suspect):
                texts = column.take(pa.array(suspect)).to_pylist()
                formula = np.zeros(len(column), dtype=np.bool_)
                formula[suspect] = [neutralise(text) is not text for text in texts]
                if formula.any():
                    column = pc.if_else(pa.array(formula), pc.binary_join_element_wise("'", column, ""), column)
                    offsets, data = _offsets_and_data(column)
        hits = special[data] if may_quote and len(data) else None
        if hits is not None and hits.any():
            marks = np.concatenate(([0], np.cumsum(hits, dtype=np.int64)))
            needs = marks[offsets[1:]] > marks[offsets[:-1]]
            if needs.any():
                inner = pc.replace_substring(column, '"', '""')
                column = pc.if_else(pa.array(needs), pc.binary_join_element_wise('"', inner, '"', ""), column)
        quoted.append(column)
    if not quoted or not len(quoted[0]):
        return b""
    lines = quoted[0] if len(quoted) == 1 else pc.binary_join_element_wise(*quoted, delimiter)
    return _string_bytes(pc.binary_join_element_wise(lines, pa.scalar("\r\n"), ""))


def _offsets_and_data(array: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """A pyarrow string array's value offsets (rebased to its data) and its UTF-8 bytes, as numpy arrays."""
    if isinstance(array, __import__("pyarrow").ChunkedArray):
        array = array.combine_chunks()
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, dtype=np.uint8)
    return offsets.astype(np.int64), data


def _string_bytes(array: Any) -> bytes:
    """The concatenated text of a pyarrow string array (its data buffer between the first and last offset)."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    data = array.buffers()[2]
    return data[int(offsets[0]) : int(offsets[-1])].to_pybytes() if data is not None else b""
