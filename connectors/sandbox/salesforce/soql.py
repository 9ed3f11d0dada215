"""SOQL syntax for the Salesforce sandbox: a tokenizer and a recursive-descent parser for a subset.

Why hand-written rather than a grammar library: the subset the connectors need is small (one object, a
field list, a boolean filter, ORDER BY, LIMIT/OFFSET, ``COUNT()``), a real SOQL grammar package for Python
is not maintained, and a generic parser generator (``lark``) would be a new runtime dependency for about
the size of this module. The parser is still a real one: every token is consumed by a grammar rule, and
whatever the subset does not cover is refused with Salesforce's ``MALFORMED_QUERY`` and the position of the
offending token (``ERROR at Row:1:Column:27``), never silently ignored.

Grammar (keywords case-insensitive)::

    query      := SELECT select FROM name [WHERE condition] [ORDER BY order (',' order)*]
                  [LIMIT integer] [OFFSET integer]
    select     := COUNT '(' ')' | field (',' field)*
    field      := name ('.' name)*                      -- Account.Name follows a relationship
    condition  := unary (AND unary)* | unary (OR unary)*  -- SOQL needs parentheses to mix AND and OR
    unary      := NOT unary | '(' condition ')' | field operator value
                | field [NOT] IN '(' value (',' value)* ')' | field LIKE string
    operator   := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
    value      := string | number | TRUE | FALSE | NULL | date | datetime | date_literal
    date       := 2024-01-31
    datetime   := 2024-01-31T12:00:00Z | 2024-01-31T12:00:00.000+0000 | ...+01:00
    date_literal := TODAY | YESTERDAY | TOMORROW | LAST_N_DAYS:n | NEXT_N_DAYS:n | N_DAYS_AGO:n
    order      := field [ASC | DESC] [NULLS (FIRST | LAST)]

This module knows nothing about objects or fields: :mod:`connectors.sandbox.salesforce.query` resolves
names against the org's schema (``INVALID_FIELD``, ``INVALID_TYPE``) and evaluates the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

__all__ = [
    "DATE_LITERALS",
    "And",
    "Comparison",
    "Condition",
    "FieldRef",
    "InList",
    "Like",
    "Not",
    "Or",
    "OrderItem",
    "Query",
    "SoqlError",
    "Value",
    "format_error",
    "normalize_datetime",
    "parse_condition",
    "parse_query",
]

#: the relative date literals the sandbox evaluates (``name`` -> takes ``:n``)
DATE_LITERALS: dict[str, bool] = {
    "TODAY": False,
    "YESTERDAY": False,
    "TOMORROW": False,
    "LAST_N_DAYS": True,
    "NEXT_N_DAYS": True,
    "N_DAYS_AGO": True,
}

#: SOQL words the subset does not support: naming them gives a clearer MALFORMED_QUERY message
_UNSUPPORTED = {
    "GROUP": "GROUP BY",
    "HAVING": "HAVING",
    "WITH": "WITH",
    "FOR": "FOR VIEW/REFERENCE/UPDATE",
    "USING": "USING SCOPE",
    "TYPEOF": "TYPEOF",
    "INCLUDES": "INCLUDES",
    "EXCLUDES": "EXCLUDES",
    "FIELDS": "FIELDS()",
    "TOLABEL": "toLabel()",
    "FORMAT": "FORMAT()",
    "CONVERTCURRENCY": "convertCurrency()",
    "SUM": "aggregate functions",
    "AVG": "aggregate functions",
    "MIN": "aggregate functions",
    "MAX": "aggregate functions",
    "COUNT_DISTINCT": "aggregate functions",
}
_KEYWORDS = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "TRUE",
        "FALSE",
        "NULL",
        "COUNT",
    }
    | set(_UNSUPPORTED)
)

Op: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]
ValueKind: TypeAlias = Literal["string", "number", "boolean", "null", "date", "datetime", "date_literal"]


class SoqlError(Exception):
    """A query Salesforce refuses: ``code`` is its errorCode (MALFORMED_QUERY, INVALID_FIELD, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def format_error(text: str, pos: int, detail: str) -> str:
    """Salesforce's error layout: the query line, a caret under the position, row/column, the detail."""
    pos = max(0, min(pos, len(text)))
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    row = text.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{detail}"


# AST -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field as written (``path`` keeps the query's casing; the org resolves it)."""

    path: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Value:
    """A literal. ``value``: str, int or float, bool, None, ``YYYY-MM-DD``, a normalized datetime string
    (``2024-01-01T00:00:00.000+0000``), or ``(name, n)`` for a relative date literal."""

    kind: ValueKind
    value: Any
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Comparison:
    field: FieldRef
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class InList:
    field: FieldRef
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Like:
    field: FieldRef
    #: the pattern as written (``%``, ``_`` wildcards; ``\\%``, ``\\_`` literal)
    pattern: Value


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Condition, ...]


Condition: TypeAlias = Comparison | InList | Like | Not | And | Or


@dataclass(frozen=True, slots=True)
class OrderItem:
    field: FieldRef
    descending: bool = False
    #: None: Salesforce's default (nulls first ascending, last descending)
    nulls_first: bool | None = None


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    fields: tuple[FieldRef, ...]
    #: ``SELECT COUNT() FROM ...``: only ``totalSize`` is answered
    count: bool
    sobject: str
    sobject_pos: int
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


# tokenizer -------------------------------------------------------------------------------------------------

TokenKind: TypeAlias = Literal["ident", "string", "number", "date", "datetime", "op", "punct", "eof"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    value: Any
    text: str
    pos: int

    @property
    def keyword(self) -> str | None:
        """The upper-cased word when this is an identifier that is a SOQL keyword."""
        if self.kind != "ident":
            return None
        upper = str(self.value).upper()
        return upper if upper in _KEYWORDS else None


_SPACE_RE = re.compile(r"\s+")
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})(?![\w.:])"
)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![\w.:-])")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?![\w.])")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_PUNCT = "(),.:"
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


def normalize_datetime(moment: datetime) -> str:
    """Salesforce's datetime text, ``2024-01-01T00:00:00.000+0000`` (UTC, milliseconds).

    Every stored and compared datetime uses this fixed-width form, so that string order is time order.
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "+0000"


def _datetime_value(match: re.Match[str], text: str, pos: int) -> str:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = "+00:00" if zone == "Z" else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    try:
        moment = datetime.fromisoformat(
            f"{year}-{month}-{day}T{hour}:{minute}:{second}.{micro:06d}{tz}",
        )
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", format_error(text, pos, f"invalid datetime: {match.group(0)}")) from None
    return normalize_datetime(moment)


def _string(text: str, pos: int) -> tuple[str, int]:
    """Decode the string literal starting at ``pos`` (a quote); returns the value and the end position.

    ``\\%`` and ``\\_`` stay escaped (only LIKE gives them a meaning; elsewhere they mean % and _).
    """
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt.lower() in _ESCAPES:
                out.append(_ESCAPES[nxt.lower()])
                i += 2
                continue
            if nxt in "%_":
                out.append("\\" + nxt)
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            raise SoqlError("MALFORMED_QUERY", format_error(text, i, f"Invalid string literal escape: \\{nxt}"))
        out.append(ch)
        i += 1
    raise SoqlError("MALFORMED_QUERY", format_error(text, pos, "unterminated string literal"))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        space = _SPACE_RE.match(text, i)
        if space:
            i = space.end()
            continue
        ch = text[i]
        if ch == "'":
            value, end = _string(text, i)
            tokens.append(_Token("string", value, text[i:end], i))
            i = end
            continue
        if ch.isdigit() or (ch in "+-." and i + 1 < n and text[i + 1].isdigit()):
            dt = _DATETIME_RE.match(text, i)
            if dt:
                tokens.append(_Token("datetime", _datetime_value(dt, text, i), dt.group(0), i))
                i = dt.end()
                continue
            date = _DATE_RE.match(text, i)
            if date:
                try:
                    datetime(int(date.group(1)), int(date.group(2)), int(date.group(3)), tzinfo=UTC)
                except ValueError:
                    raise SoqlError(
                        "MALFORMED_QUERY", format_error(text, i, f"invalid date: {date.group(0)}")
                    ) from None
                tokens.append(_Token("date", date.group(0), date.group(0), i))
                i = date.end()
                continue
            num = _NUMBER_RE.match(text, i)
            if num:
                literal = num.group(0)
                number: int | float = float(literal) if "." in literal else int(literal)
                tokens.append(_Token("number", number, literal, i))
                i = num.end()
                continue
        ident = _IDENT_RE.match(text, i)
        if ident:
            tokens.append(_Token("ident", ident.group(0), ident.group(0), i))
            i = ident.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", "!=" if op == "<>" else op, op, i))
            i += len(op)
            continue
        if ch in _PUNCT:
            tokens.append(_Token("punct", ch, ch, i))
            i += 1
            continue
        raise SoqlError("MALFORMED_QUERY", format_error(text, i, f"unexpected token: '{ch}'"))
    tokens.append(_Token("eof", None, "<EOF>", n))
    return tokens


# parser ----------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    # token helpers

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def _fail(self, tok: _Token | None = None, detail: str | None = None) -> SoqlError:
        tok = tok or self.tok
        if detail is None:
            keyword = tok.keyword
            if keyword in _UNSUPPORTED:
                detail = f"{_UNSUPPORTED[keyword]} is not supported by the leadsync Salesforce sandbox"
            else:
                detail = f"unexpected token: {tok.text if tok.kind != 'string' else repr(tok.value)}"
        return SoqlError("MALFORMED_QUERY", format_error(self.text, tok.pos, detail))

    def _is(self, keyword: str) -> bool:
        return self.tok.keyword == keyword

    def _accept(self, keyword: str) -> bool:
        if self._is(keyword):
            self._advance()
            return True
        return False

    def _expect(self, keyword: str) -> _Token:
        if not self._is(keyword):
            raise self._fail()
        return self._advance()

    def _punct(self, char: str) -> bool:
        if self.tok.kind == "punct" and self.tok.value == char:
            self._advance()
            return True
        return False

    def _expect_punct(self, char: str) -> None:
        if not self._punct(char):
            raise self._fail()

    # rules

    def query(self) -> Query:
        self._expect("SELECT")
        fields, count = self._select()
        self._expect("FROM")
        name_tok = self.tok
        if name_tok.kind != "ident" or name_tok.keyword is not None:
            raise self._fail()
        self._advance()
        if self.tok.kind == "punct" and self.tok.value == ",":
            raise self._fail(detail="joins of several objects in FROM are not supported")
        if self.tok.kind == "ident" and self.tok.keyword is None:
            raise self._fail(detail="object aliases are not supported by the leadsync Salesforce sandbox")
        where = None
        if self._accept("WHERE"):
            where = self.condition()
        order: list[OrderItem] = []
        if self._accept("ORDER"):
            self._expect("BY")
            order.append(self._order_item())
            while self._punct(","):
                order.append(self._order_item())
        limit = self._integer_clause("LIMIT")
        offset = self._integer_clause("OFFSET")
        if self.tok.kind != "eof":
            raise self._fail()
        return Query(
            text=self.text,
            fields=tuple(fields),
            count=count,
            sobject=str(name_tok.value),
            sobject_pos=name_tok.pos,
            where=where,
            order_by=tuple(order),
            limit=limit,
            offset=offset,
        )

    def _select(self) -> tuple[list[FieldRef], bool]:
        if self._is("COUNT"):
            count_tok = self._advance()
            if not self._punct("("):
                raise self._fail(count_tok, "aggregate queries need COUNT()")
            if not self._punct(")"):
                raise self._fail(detail="COUNT(field) and other aggregates are not supported by the sandbox")
            return [], True
        fields = [self._select_item()]
        while self._punct(","):
            fields.append(self._select_item())
        return fields, False

    def _select_item(self) -> FieldRef:
        if self.tok.kind == "punct" and self.tok.value == "(":
            raise self._fail(detail="relationship subqueries are not supported by the leadsync Salesforce sandbox")
        return self.field()

    def field(self) -> FieldRef:
        tok = self.tok
        if tok.kind != "ident" or tok.keyword is not None:
            raise self._fail()
        self._advance()
        if self.tok.kind == "punct" and self.tok.value == "(":
            raise self._fail(tok, f"function {tok.text}() is not supported by the leadsync Salesforce sandbox")
        path = [str(tok.value)]
        while self._punct("."):
            part = self.tok
            if part.kind != "ident":
                raise self._fail()
            self._advance()
            path.append(str(part.value))
        return FieldRef(tuple(path), tok.pos)

    def _order_item(self) -> OrderItem:
        field = self.field()
        descending = False
        if self._accept("DESC"):
            descending = True
        else:
            self._accept("ASC")
        nulls_first: bool | None = None
        if self._accept("NULLS"):
            if self._accept("FIRST"):
                nulls_first = True
            elif self._accept("LAST"):
                nulls_first = False
            else:
                raise self._fail()
        return OrderItem(field, descending, nulls_first)

    def _integer_clause(self, keyword: str) -> int | None:
        if not self._accept(keyword):
            return None
        tok = self.tok
        if tok.kind != "number" or not isinstance(tok.value, int) or tok.value < 0 or tok.text[0] in "+-":
            raise self._fail(detail=f"{keyword} needs a non-negative integer, got {tok.text}")
        self._advance()
        return int(tok.value)

    def condition(self) -> Condition:
        first = self._unary()
        if self._is("AND") or self._is("OR"):
            joiner = self.tok.keyword
            operands = [first]
            while self._is("AND") or self._is("OR"):
                if self.tok.keyword != joiner:
                    # SOQL refuses "a AND b OR c": the grouping must be explicit
                    raise self._fail()
                self._advance()
                operands.append(self._unary())
            return And(tuple(operands)) if joiner == "AND" else Or(tuple(operands))
        return first

    def _unary(self) -> Condition:
        if self._accept("NOT"):
            return Not(self._unary())
        if self._punct("("):
            inner = self.condition()
            self._expect_punct(")")
            return inner
        return self._predicate()

    def _predicate(self) -> Condition:
        field = self.field()
        tok = self.tok
        if tok.kind == "op":
            self._advance()
            return Comparison(field, tok.value, self._value())
        if self._accept("LIKE"):
            pattern = self._value()
            if pattern.kind != "string":
                raise self._fail(detail="LIKE needs a string pattern")
            return Like(field, pattern)
        negated = False
        if self._is("NOT"):
            self._advance()
            negated = True
            if not self._is("IN"):
                raise self._fail()
        if self._accept("IN"):
            if not self._punct("("):
                raise self._fail(detail="IN needs a parenthesized list of values")
            if self._is("SELECT"):
                raise self._fail(detail="semi-join subqueries (IN (SELECT ...)) are not supported by the sandbox")
            values = [self._value()]
            while self._punct(","):
                values.append(self._value())
            self._expect_punct(")")
            return InList(field, tuple(values), negated)
        raise self._fail()

    def _value(self) -> Value:
        tok = self.tok
        if tok.kind in ("string", "number", "date", "datetime"):
            self._advance()
            return Value(tok.kind, tok.value, tok.text, tok.pos)
        keyword = tok.keyword
        if keyword in ("TRUE", "FALSE"):
            self._advance()
            return Value("boolean", keyword == "TRUE", tok.text, tok.pos)
        if keyword == "NULL":
            self._advance()
            return Value("null", None, tok.text, tok.pos)
        if tok.kind == "ident":
            name = str(tok.value).upper()
            if name in DATE_LITERALS:
                self._advance()
                amount = 0
                if DATE_LITERALS[name]:
                    if not self._punct(":"):
                        raise self._fail(detail=f"{name} needs a number, e.g. {name}:7")
                    num = self.tok
                    if num.kind != "number" or not isinstance(num.value, int) or num.value < 0:
                        raise self._fail()
                    self._advance()
                    amount = int(num.value)
                return Value("date_literal", (name, amount), self.text[tok.pos : self.tok.pos].strip(), tok.pos)
            raise self._fail(
                detail=f"unexpected token: {tok.text} (date literals other than "
                f"{', '.join(DATE_LITERALS)} are not supported by the sandbox)"
            )
        if tok.kind == "punct" and tok.value == ":":
            raise self._fail(detail="bind variables are only available in Apex")
        raise self._fail()


def parse_query(text: str) -> Query:
    """Parse one SOQL query.

    :raises SoqlError: ``MALFORMED_QUERY`` with Salesforce's position layout.
    """
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text).query()


def parse_condition(text: str) -> Condition:
    """Parse a bare condition (the WHERE part), e.g. for the sandbox's validation rules."""
    parser = _Parser(text)
    cond = parser.condition()
    if parser.tok.kind != "eof":
        raise parser._fail()
    return cond
