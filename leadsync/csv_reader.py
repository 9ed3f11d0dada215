"""The columnar CSV reader behind ``leadsync score`` and ``evaluate --input``: a file in chunks of columns.

The file is cut into blocks of about ``BLOCK_BYTES`` at line ends (decoded from its encoding to UTF-8 on
the way, a BOM dropped) and each block is parsed by ``pyarrow.csv`` into one string array per header column,
every cell kept as its text. A block is taken from pyarrow only when that cannot differ from the exact row
reader of ``leadsync.scorefile`` (``csv.reader`` fed line by line): no lone carriage return, no NUL, no quote
that is neither at a field's edge nor doubled, every record on one line (pyarrow's rows = the block's
non-blank lines, which also gives each record its line number) and no row of another width. Any other block
(a stray quote, a record spanning lines, a short or long row) is read by the exact row reader instead, from
the block's first line to the first record boundary after its last one, so that a malformed row is reported
with its line and reason exactly as before while clean blocks go at pyarrow's speed.

pyarrow rather than polars: its reader takes the column types (all text, no null inference: the null tokens
are the config's, applied by the mapping), reports a row of another width to a handler instead of failing,
and its compute functions (dictionary encoding, casts, regex, string joins) do the typed conversion and the
CSV writing without a Python loop per cell. pyarrow is imported inside the functions that need it, so that
``leadsync --help`` does not load it.
"""

from __future__ import annotations

import codecs
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from leadsync.csv_dialect import CsvDialect, first_foreign_text, not_text

if TYPE_CHECKING:
    from leadsync.scorefile import RowProblem, _Record

#: a block parsed at once: memory per chunk is a multiple of it (the scoring matrices of its ~10,000 rows),
#: whatever the file's size; larger blocks gain little speed for much more memory
BLOCK_BYTES = 2 << 20
#: blocks read ahead by the reading thread while the previous one is scored
READ_AHEAD = 2
#: bytes read from the file at a time
READ_BYTES = 1 << 20
_LINE_END = re.compile(rb"\r\n?|\n")


def _odd_quote(data: npt.NDArray[np.uint8], delimiter: int) -> bool:
    """Whether a quote has an ordinary character on both sides: where ``csv`` and pyarrow may read a field
    apart (a quote opening or closing a field touches a delimiter or a line end, a doubled one its twin)."""
    at = np.flatnonzero(data == 34)
    if not len(at):
        return False
    before = np.where(at > 0, data[np.maximum(at - 1, 0)], 10)
    after = np.where(at + 1 < len(data), data[np.minimum(at + 1, len(data) - 1)], 0)
    edge_before = (before == delimiter) | (before == 10) | (before == 34)
    edge_after = (after == delimiter) | (after == 13) | (after == 10) | (after == 34)
    return bool((~edge_before & ~edge_after).any())


@dataclass
class Chunk:
    """Some consecutive records of the file: their cells column by column, their lines, and the records
    skipped among them (broken or of another width, with why)."""

    cells: list[Any]  #: one pyarrow string array per header column
    lines: npt.NDArray[np.int64]  #: the line each record starts on
    rejects: list[tuple[_Record, list[RowProblem]]] = field(default_factory=list)
    broken: int = 0  #: how many of the rejects are broken records (an unclosed quote...)
    #: whether a cell may hold a delimiter, quote or line end (False: the block had no quote at all)
    quoted: bool = True
    _raw: list[str] | None = None
    _block: bytes = b""
    _spans: npt.NDArray[np.int64] | None = None

    @property
    def n(self) -> int:
        return len(self.lines)

    def raw(self, i: int) -> str:
        """Record i's text as read (for ``--rejects``)."""
        if self._raw is not None:
            return self._raw[i]
        assert self._spans is not None
        start, end = self._spans[i].tolist()
        return self._block[start:end].decode("utf-8").rstrip("\r\n")


class _Stream:
    """The file decoded to UTF-8, taken as blocks ending at a line end or line by line (``readline``, what the
    exact row reader reads)."""

    def __init__(self, handle: IO[bytes], source: Path, encoding: str, max_line_chars: int = 1 << 20) -> None:
        self._handle = handle
        self._source = source
        self._encoding = encoding
        # undecodable bytes are kept as lone surrogates: a line in another encoding is rejected on its own
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="surrogateescape")
        #: valid non-ASCII text has been read: the file is in its encoding (see ``first_foreign_text``)
        self.proven = False
        #: a block is never grown past this without a line end: such a line goes to the exact reader, bounded
        self.max_block_line = 4 * max_line_chars
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._newlines = 0  #: newlines in the raw bytes read so far (for the line of undecodable bytes)
        self.line = 1  #: the number of the next line to be taken

    def _fill(self) -> bool:
        """Read and decode more of the file; False at its end."""
        if self._eof:
            return False
        try:
            raw = self._handle.read(READ_BYTES)
        except OSError as exc:
            from leadsync.scorefile import ScoreFileError

            raise ScoreFileError(f"{self._source}: cannot read: {exc.strerror or exc}") from None
        text = self._decoder.decode(raw, final=not raw)
        self.proven, bad = first_foreign_text(text, proven=self.proven)
        if bad is not None:
            from leadsync.scorefile import ScoreFileError

            line = self._newlines + text[:bad].count("\n") + 1
            raise ScoreFileError(not_text(self._source, line, self._encoding))
        self._newlines += raw.count(b"\n")
        if self._pos > (1 << 22):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += text.encode("utf-8", "surrogatepass")
        if not raw:
            self._eof = True
        return True

    def readline(self, size: int = -1) -> str:
        """The next line with its line end ("" at the end), split as ``open(newline="")`` splits; with
        ``size``, at most that many bytes of it (the rest comes with the next calls), never buffering more."""
        while True:
            found = _LINE_END.search(self._buf, self._pos)
            if found is not None and (found.end() < len(self._buf) or self._eof or found.group() != b"\r"):
                end = found.end()
                break
            if 0 <= size <= len(self._buf) - self._pos:
                end = self._pos + size
                break
            if not self._fill():
                end = len(self._buf)
                break
        if 0 <= size < end - self._pos:
            end = self._pos + size
            while end > self._pos and (self._buf[end] & 0xC0) == 0x80:  # not inside a character
                end -= 1
        text = bytes(self._buf[self._pos : end]).decode("utf-8", "surrogatepass")
        self._pos = end
        if text.endswith(("\n", "\r")) or (text and self._eof and self._pos >= len(self._buf)):
            self.line += 1
        return text

    def block(self, size: int) -> tuple[bytes, int] | None:
        """The next block of whole lines (about ``size`` bytes) and its first line's number; None at the end."""
        while len(self._buf) - self._pos < size and self._fill():
            pass
        while True:
            cut = self._buf.rfind(b"\n", self._pos, self._pos + size)
            if cut >= 0 or self._eof:
                break
            if size >= self.max_block_line:  # a line this long: the exact reader rejects it, line by line
                return b"", self.line
            size *= 2  # one line longer than a block: take more
            while len(self._buf) - self._pos < size and self._fill():
                pass
        end = cut + 1 if cut >= 0 else len(self._buf)
        if end <= self._pos:
            return None
        data = bytes(self._buf[self._pos : end])
        first = self.line
        self._pos = end
        self.line += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        return data, first

    def unread(self, data: bytes, first: int) -> None:
        """Give back the block just taken (it is read line by line instead)."""
        self._pos -= len(data)
        self.line = first


class _LineHandle:
    """``readline`` of the stream, as the exact row reader's ``_Lines`` wants a handle."""

    def __init__(self, stream: _Stream) -> None:
        self.readline = stream.readline
        self._stream = stream

    @property
    def proven(self) -> bool:
        """The file has shown valid non-ASCII text (a later undecodable line is rejected on its own)."""
        return self._stream.proven


@contextmanager
def csv_chunks(
    source: Path, dialect: CsvDialect, max_record_lines: int, block_bytes: int | None = None
) -> Iterator[tuple[list[str], Iterator[Chunk]]]:
    """The header (checked as ``score`` checks it) and the file's records in chunks (see the module docstring)."""
    from leadsync.scorefile import ScoreFileError, _header, _Lines

    try:
        handle = source.open("rb")
    except OSError as exc:
        raise ScoreFileError(f"{source}: cannot read: {exc.strerror or exc}") from None
    with handle:
        stream = _Stream(handle, source, dialect.encoding, dialect.max_line_chars)
        lines = _Lines(_LineHandle(stream), source, max_record_lines, dialect.encoding, max_line=dialect.max_line_chars)  # type: ignore[arg-type]
        header = _header(source, lines, dialect.delimiter)
        stream.line = lines.next_number
        size = block_bytes or BLOCK_BYTES
        yield header, _chunks(stream, source, header, dialect, max_record_lines, size)


def read_ahead(chunks: Iterator[Chunk], depth: int = READ_AHEAD) -> Iterator[Chunk]:
    """``chunks`` produced by a thread up to ``depth`` ahead: pyarrow parses the next block (without the
    GIL) while this one is scored. An error of the reader is raised here, in order; stopping early (an error,
    a stop signal) stops the thread."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=work, name="csv-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def _chunks(
    stream: _Stream, source: Path, header: list[str], dialect: CsvDialect, max_record_lines: int, block_bytes: int
) -> Iterator[Chunk]:
    while True:
        taken = stream.block(block_bytes)
        if taken is None:
            return
        data, first = taken
        chunk = _fast_chunk(data, first, len(header), dialect.delimiter, dialect.max_line_chars) if data else None
        if chunk is None:
            stream.unread(data, first)
            last = first + data.count(b"\n") - (1 if data.endswith(b"\n") else 0)
            chunk = _exact_chunk(stream, source, header, dialect, max_record_lines, first, last)
        yield chunk


def _fast_chunk(data: bytes, first: int, width: int, delimiter: str, max_line: int = 1 << 20) -> Chunk | None:
    """The block parsed by pyarrow, or None when the exact row reader must read it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if b"\x00" in data or (b"\r" in data and data.count(b"\r") != data.count(b"\r\n")):
        return None
    if b"\xed\xb2" in data or b"\xed\xb3" in data:  # undecodable bytes (lone surrogates): rejected line by line
        return None
    bytes_ = np.frombuffer(data, dtype=np.uint8)
    if b'"' in data and _odd_quote(bytes_, ord(delimiter)):
        return None
    ends = np.flatnonzero(bytes_ == 10).astype(np.int64)
    starts = np.concatenate(([0], ends + 1)).astype(np.int64)
    if not data.endswith(b"\n"):
        ends = np.concatenate((ends, [len(data)]))
    starts = starts[: len(ends)]
    if len(ends) and int((ends - starts).max()) > max_line:  # maybe over the limit: the exact reader counts
        return None
    content_end = ends - ((ends > starts) & (bytes_[np.maximum(ends - 1, 0)] == 13))
    records = np.flatnonzero(content_end > starts)
    invalid: list[Any] = []

    def skip(row: Any) -> str:
        invalid.append(row)
        return "skip"

    names = [str(i) for i in range(width)]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=max(1 << 20, len(data) // 2 + 1)),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=skip,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    if invalid or table.num_rows != len(records):
        return None
    cells = [table.column(i).combine_chunks() for i in range(width)]
    spans = np.stack([starts[records], ends[records]], axis=1)
    return Chunk(cells, (first + records).astype(np.int64), quoted=b'"' in data, _block=data, _spans=spans)


def _exact_chunk(
    stream: _Stream,
    source: Path,
    header: list[str],
    dialect: CsvDialect,
    max_record_lines: int,
    first: int,
    last: int,
) -> Chunk:
    """Records from line ``first`` read by the exact row reader, up to the first record boundary after ``last``."""
    import pyarrow as pa

    from leadsync.scorefile import RowProblem, _Lines, _records

    lines = _Lines(
        _LineHandle(stream),  # type: ignore[arg-type]
        source,
        max_record_lines,
        dialect.encoding,
        start=first,
        max_line=dialect.max_line_chars,
    )
    width = len(header)
    columns: list[list[str]] = [[] for _ in range(width)]
    numbers: list[int] = []
    raws: list[str] = []
    chunk = Chunk([], np.zeros(0, dtype=np.int64))
    for record in _records(lines, width, dialect.delimiter):
        line = record.line
        if record.broken is not None:
            chunk.broken += 1
            problem = RowProblem(line, None, f"broken record: {record.broken}; reading on at line {line + 1}")
            chunk.rejects.append((record, [problem]))
        elif len(record.cells) != width:
            why = "an unquoted delimiter in a value?" if len(record.cells) > width else "a line cut short?"
            problem = RowProblem(line, None, f"{len(record.cells)} cells, the header has {width} ({why})")
            chunk.rejects.append((record, [problem]))
        else:
            for column, cell in zip(columns, record.cells, strict=True):
                column.append(cell)
            numbers.append(line)
            raws.append(record.raw)
        # a broken record's other lines are given back when the reader resumes: never stop right after one
        if record.broken is None and lines.at_boundary and lines.next_number > last:
            break
    stream.line = lines.next_number
    chunk.cells = [pa.array(column, type=pa.string()) for column in columns]
    chunk.lines = np.array(numbers, dtype=np.int64)
    chunk._raw = raws
    return chunk
