"""SOQL over the store: resolving fields, compiling conditions onto the indexes, paging with query locators."""

from __future__ import annotations

import bisect
import itertools
import operator
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.salesforce import soql
from connectors.sandbox.salesforce._http import (
    SalesforceRoutes,
)
from connectors.sandbox.salesforce.schema import (
    FieldDef,
    ObjectDef,
    to_18,
)
from connectors.sandbox.salesforce.store import (
    _TOP,
    CURSOR_IDLE_S,
    ID,
    IS_DELETED,
    MAX_CURSORS,
    MAX_OFFSET,
    QUERY_DEFAULT_BATCH,
    QUERY_MIN_BATCH,
    Getter,
    OrgStore,
    Predicate,
    SalesforceError,
    Table,
)

# compiled queries -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Column:
    """A selected, filtered or sorted field: its canonical path, final field and value getter."""

    path: tuple[str, ...]
    field: FieldDef
    get: Getter
    polymorphic: bool = False

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(slots=True)
class _Node:
    """How to render one record of a result: plain fields, and nested parent records (relationships)."""

    fields: list[tuple[str, int]] = field(default_factory=list)
    #: (relationship name, reference column, polymorphic?, {key prefix: (table, node)})
    parents: list[tuple[str, int, bool, dict[str, tuple[Table, _Node]]]] = field(default_factory=list)
    order: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class _Compiled:
    """A run query: the snapshot rows, how to render them, and how they were found."""

    table: Table
    columns: list[_Column]
    node: _Node
    count_only: bool
    rows: list[list[Any]]
    #: "ids" (Id = / IN), "index" (the SystemModstamp index) or "scan" (every row)
    plan: str = "scan"
    #: rows looked at before the filter (what the index saves)
    scanned: int = 0


@dataclass(slots=True)
class _Cursor:
    locator: str
    compiled: _Compiled
    batch: int
    last_used: float


class QueryOrg(OrgStore):
    """``query``/``queryAll`` and ``query_more``: SOQL compiled to predicates over the tables."""

    def _error(self, text: str, pos: int, code: str, detail: str) -> SalesforceError:
        return SalesforceError(400, code, soql.format_error(text, pos, detail))

    def _resolve(self, obj: ObjectDef, ref: soql.FieldRef, text: str) -> _Column:
        path = list(ref.path)
        if len(path) > 1 and path[0].lower() == obj.name.lower() and path[0].lower() not in obj.relationships:
            path = path[1:]
        hops: list[FieldDef] = []
        current: list[ObjectDef] = [obj]
        canonical: list[str] = []
        for part in path[:-1]:
            if len(current) != 1:
                raise self._error(
                    text,
                    ref.pos,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{part}' in field "
                    "path: a polymorphic relationship can only be followed to one of its fields",
                )
            rel = current[0].relationships.get(part.lower())
            if rel is None:
                raise self._error(
                    text,
                    ref.pos,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                    "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                    "your WSDL or the describe call for the appropriate names.",
                )
            hops.append(rel)
            canonical.append(rel.relationship_name or part)
            current = [self.objects[t] for t in rel.reference_to if t in self.objects]
        last = path[-1]
        finals = [o.field(last) for o in current]
        if not finals or any(f is None for f in finals):
            owner = current[0].name if len(current) == 1 else "Name"
            raise self._error(
                text,
                ref.pos,
                "INVALID_FIELD",
                f"No such column '{last}' on entity '{owner}'. If you are attempting to use a custom field, be sure "
                "to append the '__c' after the custom field name. Please reference your WSDL or the describe call "
                "for the appropriate names.",
            )
        final = finals[0]
        assert final is not None
        canonical.append(final.name)
        polymorphic = len(current) > 1
        get = self._getter(
            [h.index for h in hops], {o.key_prefix: f.index for o, f in zip(current, finals, strict=True) if f}
        )
        return _Column(tuple(canonical), final, get, polymorphic)

    def _getter(self, hops: list[int], final: dict[str, int]) -> Getter:
        if not hops:
            return operator.itemgetter(next(iter(final.values())))
        by_prefix = self._by_prefix
        single = next(iter(final.values())) if len(final) == 1 else None

        def get(row: list[Any]) -> Any:
            prefix = ""
            for ref_index in hops:
                parent_id = row[ref_index]
                if parent_id is None:
                    return None
                prefix = parent_id[:3]
                table = by_prefix.get(prefix)
                parent = table.rows.get(parent_id) if table is not None else None
                if parent is None:
                    return None
                row = parent
            index = single if single is not None else final.get(prefix)
            return None if index is None or index >= len(row) else row[index]

        return get

    def _render_tree(self, obj: ObjectDef, columns: Sequence[_Column], refs: Sequence[soql.FieldRef]) -> _Node:
        root = _Node()
        for column, ref in zip(columns, refs, strict=True):
            path = list(ref.path)
            if len(path) > 1 and path[0].lower() == obj.name.lower() and path[0].lower() not in obj.relationships:
                path = path[1:]
            self._add_to_tree(root, obj, path, column.path)
        return root

    def _add_to_tree(self, node: _Node, obj: ObjectDef, path: list[str], canonical: tuple[str, ...]) -> None:
        if len(path) == 1:
            fd = obj.field(path[0])
            assert fd is not None
            if all(name != fd.name for name, _ in node.fields):
                node.fields.append((fd.name, fd.index))
                node.order.append(("f", len(node.fields) - 1))
            return
        rel = obj.relationships[path[0].lower()]
        name = rel.relationship_name or path[0]
        found = [entry[3] for entry in node.parents if entry[0] == name]
        targets: dict[str, tuple[Table, _Node]] = found[0] if found else {}
        if not found:
            node.parents.append((name, rel.index, len(rel.reference_to) > 1, targets))
            node.order.append(("p", len(node.parents) - 1))
        for target in rel.reference_to:
            target_obj = self.objects.get(target)
            if target_obj is None:
                continue
            entry = targets.get(target_obj.key_prefix)
            if entry is None:
                entry = (self.tables[target_obj.name], _Node())
                targets[target_obj.key_prefix] = entry
            self._add_to_tree(entry[1], target_obj, path[1:], canonical[1:])

    def _literal_error(
        self, text: str, value: soql.Value, column: _Column, expected: str, quoted: bool
    ) -> SalesforceError:
        hint = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return self._error(
            text,
            value.pos,
            "INVALID_FIELD",
            f"value of filter criterion for field '{column.name}' must be of type {expected} and {hint}",
        )

    def _key(self, column: _Column, value: soql.Value, text: str) -> Any:
        """A literal as the stored form of the column's type (case-folded for text), after type checks."""
        fd = column.field
        kind = value.kind
        if kind == "null":
            return None
        if fd.is_text:
            if kind != "string":
                raise self._literal_error(text, value, column, "string", True)
            raw = str(value.value).replace("\\%", "%").replace("\\_", "_")
            return raw.casefold() if raw else None
        if fd.is_id:
            if kind != "string":
                raise self._literal_error(text, value, column, "id", True)
            full = to_18(str(value.value))
            if full is None:
                raise self._error(text, value.pos, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value.value}")
            return full
        if fd.is_number:
            if kind != "number":
                raise self._literal_error(text, value, column, "double" if fd.type != "int" else "integer", False)
            return float(value.value)
        if fd.type == "boolean":
            if kind != "boolean":
                raise self._literal_error(text, value, column, "boolean", False)
            return bool(value.value)
        if fd.type == "datetime":
            if kind == "datetime":
                return value.value
            raise self._literal_error(text, value, column, "dateTime", False)
        if fd.type == "date":
            if kind == "date":
                return value.value
            raise self._literal_error(text, value, column, "date", False)
        raise self._error(
            text, value.pos, "INVALID_FIELD", f"field '{column.name}' can not be filtered in a query call"
        )

    def _date_range(self, column: _Column, value: soql.Value, text: str) -> tuple[str, str]:
        """``[start, end)`` of a relative date literal in the column's stored form (UTC days)."""
        if column.field.type not in ("date", "datetime"):
            raise self._literal_error(text, value, column, column.field.type, column.field.is_text)
        name, n = value.value
        today = datetime.now(UTC).date()
        spans = {
            "TODAY": (today, today + timedelta(days=1)),
            "YESTERDAY": (today - timedelta(days=1), today),
            "TOMORROW": (today + timedelta(days=1), today + timedelta(days=2)),
            "LAST_N_DAYS": (today - timedelta(days=n), today + timedelta(days=1)),
            "NEXT_N_DAYS": (today + timedelta(days=1), today + timedelta(days=n + 1)),
            "N_DAYS_AGO": (today - timedelta(days=n), today - timedelta(days=n - 1)),
        }
        start, end = spans[name]
        if column.field.type == "date":
            return start.isoformat(), end.isoformat()
        return f"{start.isoformat()}T00:00:00.000+0000", f"{end.isoformat()}T00:00:00.000+0000"

    def _compile_condition(self, cond: soql.Condition, obj: ObjectDef, text: str) -> Predicate:
        if isinstance(cond, soql.And | soql.Or):
            conjunction = isinstance(cond, soql.And)
            parts = [self._compile_condition(c, obj, text) for c in cond.operands]
            if len(parts) == 2:  # the usual case: no generator per row
                a, b = parts
                return (lambda r: a(r) and b(r)) if conjunction else (lambda r: a(r) or b(r))
            combine = all if conjunction else any
            return lambda r: combine(p(r) for p in parts)
        if isinstance(cond, soql.Not):
            inner = self._compile_condition(cond.operand, obj, text)
            return lambda r: not inner(r)
        if isinstance(cond, soql.Like):
            return self._compile_like(cond, obj, text)
        if isinstance(cond, soql.InList):
            return self._compile_in(cond, obj, text)
        return self._compile_comparison(cond, obj, text)

    def _compile_like(self, cond: soql.Like, obj: ObjectDef, text: str) -> Predicate:
        column = self._resolve(obj, cond.field, text)
        if not column.field.is_text:
            raise self._error(text, cond.field.pos, "INVALID_FIELD", f"invalid operator on field: {column.name}")
        pattern = str(cond.pattern.value)
        parts: list[str] = []
        i = 0
        while i < len(pattern):
            ch = pattern[i]
            if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
                parts.append(re.escape(pattern[i + 1]))
                i += 2
                continue
            parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
            i += 1
        regex = re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
        get, match = column.get, regex.fullmatch
        return lambda r: (v := get(r)) is not None and match(v) is not None

    def _compile_in(self, cond: soql.InList, obj: ObjectDef, text: str) -> Predicate:
        column = self._resolve(obj, cond.field, text)
        keys = {self._key(column, v, text) for v in cond.values}
        with_null = None in keys
        keys.discard(None)
        get = column.get
        fold = column.field.is_text
        if cond.negated:
            if fold:
                return lambda r: (
                    ((v := get(r)) is None and not with_null) or (v is not None and v.casefold() not in keys)
                )
            return lambda r: ((v := get(r)) is None and not with_null) or (v is not None and v not in keys)
        if fold:
            return lambda r: ((v := get(r)) is None and with_null) or (v is not None and v.casefold() in keys)
        if column.field.is_number:
            return lambda r: ((v := get(r)) is None and with_null) or (v is not None and float(v) in keys)
        return lambda r: ((v := get(r)) is None and with_null) or (v is not None and v in keys)

    def _compile_comparison(self, cond: soql.Comparison, obj: ObjectDef, text: str) -> Predicate:
        column = self._resolve(obj, cond.field, text)
        get, op, value = column.get, cond.op, cond.value
        if value.kind == "date_literal":
            start, end = self._date_range(column, value, text)
            ranges: dict[str, Predicate] = {
                "=": lambda r: (v := get(r)) is not None and start <= v < end,
                "!=": lambda r: (v := get(r)) is None or not start <= v < end,
                "<": lambda r: (v := get(r)) is not None and v < start,
                "<=": lambda r: (v := get(r)) is not None and v < end,
                ">": lambda r: (v := get(r)) is not None and v >= end,
                ">=": lambda r: (v := get(r)) is not None and v >= start,
            }
            return ranges[op]
        key = self._key(column, value, text)
        if key is None:
            if op == "=":
                return lambda r: get(r) is None
            if op == "!=":
                return lambda r: get(r) is not None
            raise self._error(text, value.pos, "MALFORMED_QUERY", f"null can only be compared with = or !=, not {op}")
        if column.field.type == "boolean" and op not in ("=", "!="):
            raise self._error(text, value.pos, "INVALID_FIELD", f"invalid operator on boolean field: {op}")
        if column.field.is_text:
            fold: Callable[[Any], Any] = str.casefold
        elif column.field.is_number:
            fold = float
        else:
            fold = _identity
        if op == "!=":
            return lambda r: (v := get(r)) is None or fold(v) != key
        compare = _OPERATORS[op]
        return lambda r: (v := get(r)) is not None and compare(fold(v), key)

    def _stamp_bounds(
        self, cond: soql.Condition | None, obj: ObjectDef, text: str
    ) -> tuple[str, bool, str, bool] | None:
        """The SystemModstamp range ``(low, inclusive, high, inclusive)`` a filter implies, or None.

        AND narrows (operands that say nothing about the stamp are checked row by row later), OR takes the
        hull of its operands' ranges and only when each has one. So keyset paging such as
        ``SystemModstamp > X OR (SystemModstamp = X AND Id > 'last')`` reads the index from X on.
        """
        if cond is None:
            return None
        if isinstance(cond, soql.And):
            ranges = [r for c in cond.operands if (r := self._stamp_bounds(c, obj, text)) is not None]
            if not ranges:
                return None
            lo, lo_incl, hi, hi_incl = ranges[0]
            for low, low_incl, high, high_incl in ranges[1:]:
                if low > lo or (low == lo and not low_incl):
                    lo, lo_incl = low, low_incl
                if high < hi or (high == hi and not high_incl):
                    hi, hi_incl = high, high_incl
            return lo, lo_incl, hi, hi_incl
        if isinstance(cond, soql.Or):
            maybe = [self._stamp_bounds(c, obj, text) for c in cond.operands]
            ranges = [r for r in maybe if r is not None]
            if len(ranges) != len(maybe):
                return None
            lo, lo_incl, hi, hi_incl = ranges[0]
            for low, low_incl, high, high_incl in ranges[1:]:
                if low < lo or (low == lo and low_incl):
                    lo, lo_incl = low, low_incl
                if high > hi or (high == hi and high_incl):
                    hi, hi_incl = high, high_incl
            return lo, lo_incl, hi, hi_incl
        if not isinstance(cond, soql.Comparison) or len(cond.field.path) != 1:
            return None
        if cond.field.path[0].lower() != "systemmodstamp" or cond.op == "!=":
            return None
        if cond.value.kind == "datetime":
            start = end = str(cond.value.value)
            end_incl = True
        elif cond.value.kind == "date_literal":
            column = self._resolve(obj, cond.field, text)
            start, end = self._date_range(column, cond.value, text)
            end_incl = False
        else:
            return None
        bounds: dict[str, tuple[str, bool, str, bool]] = {
            "=": (start, True, end, end_incl),
            "<": ("", True, start, False),
            "<=": ("", True, end, end_incl),
            ">": (end, not end_incl, _TOP, True),
            ">=": (start, True, _TOP, True),
        }
        return bounds[cond.op]

    def _id_candidates(self, cond: soql.Condition | None) -> set[str] | None:
        if cond is None:
            return None
        parts = cond.operands if isinstance(cond, soql.And) else (cond,)
        for part in parts:
            if len(getattr(part, "field", soql.FieldRef((), 0)).path) != 1:
                continue
            if isinstance(part, soql.Comparison) and part.op == "=" and part.field.path[0].lower() == "id":
                full = to_18(str(part.value.value)) if part.value.kind == "string" else None
                return {full} if full else set()
            if isinstance(part, soql.InList) and not part.negated and part.field.path[0].lower() == "id":
                return {f for v in part.values if v.kind == "string" and (f := to_18(str(v.value)))}
        return None

    def compile_and_run(self, text: str, *, include_deleted: bool = False, bulk: bool = False) -> _Compiled:
        """Parse, check and run a query; the result rows are a snapshot (copy-on-write rows).

        Public for tests and benchmarks: ``plan`` and ``scanned`` of the result show whether an index was used.
        """
        try:
            query = soql.parse_query(text)
        except soql.SoqlError as exc:
            raise SalesforceError(400, exc.code, exc.message) from None
        table = self._by_lower.get(query.sobject.lower())
        if table is None:
            raise self._error(
                text,
                query.sobject_pos,
                "INVALID_TYPE",
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be "
                "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for "
                "the appropriate names.",
            )
        table = self.table(table.obj.name)  # materializes activities when needed
        obj = table.obj
        if bulk and (query.count or query.offset is not None):
            raise SalesforceError(400, "INVALIDJOB", "Bulk API 2.0 query jobs support neither COUNT() nor OFFSET")
        columns = [self._resolve(obj, ref, text) for ref in query.fields]
        seen: set[str] = set()
        for column, ref in zip(columns, query.fields, strict=True):
            key = column.name.lower()
            if key in seen:
                raise self._error(text, ref.pos, "MALFORMED_QUERY", f"duplicate field selected: {column.name}")
            seen.add(key)
        predicate = self._compile_condition(query.where, obj, text) if query.where is not None else None
        orders = [(self._resolve(obj, item.field, text), item) for item in query.order_by]
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SalesforceError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")

        # candidates: by id, by the SystemModstamp index, or every row (id order)
        in_index_order = False
        ids = self._id_candidates(query.where)
        bounds = self._stamp_bounds(query.where, obj, text) if ids is None else None
        candidates: Iterable[list[Any]]
        if ids is not None:
            candidates = [table.rows[i] for i in sorted(ids) if i in table.rows]
            plan, scanned = "ids", len(candidates)
        elif bounds is not None:
            lo, lo_incl, hi, hi_incl = bounds
            index = table.stamp_index
            start = bisect.bisect_left(index, (lo, "")) if lo_incl else bisect.bisect_right(index, (lo, "~"))
            end = bisect.bisect_right(index, (hi, "~")) if hi_incl else bisect.bisect_left(index, (hi, ""))
            rows = table.rows
            candidates = (rows[rid] for _stamp, rid in itertools.islice(index, start, max(start, end)))
            in_index_order = True
            plan, scanned = "index", max(end - start, 0)
        else:
            candidates = table.rows.values()
            plan, scanned = "scan", len(table.rows)
        if not include_deleted:
            candidates = (r for r in candidates if not r[IS_DELETED])
        if predicate is not None:
            candidates = filter(predicate, candidates)

        sorted_already = not orders or (
            in_index_order
            and orders[0][0].path == ("SystemModstamp",)
            and not orders[0][1].descending
            and all(c.path == ("Id",) and not o.descending for c, o in orders[1:2])
            and len(orders) <= 2
        )
        stop = None
        if query.limit is not None and sorted_already:
            stop = (query.offset or 0) + query.limit
        result = list(itertools.islice(candidates, stop)) if stop is not None else list(candidates)
        if not sorted_already:
            for column, item in reversed(orders):
                result.sort(key=_sort_key(column, item), reverse=item.descending)
        if query.offset:
            result = result[query.offset :]
        if query.limit is not None:
            result = result[: query.limit]
        node = self._render_tree(obj, columns, query.fields)
        return _Compiled(table, columns, node, query.count, result, plan, scanned)

    # SOQL: the REST answers

    def render(self, compiled: _Compiled, rows: Sequence[list[Any]], version: str) -> list[dict[str, Any]]:
        obj_name = compiled.table.obj.name
        node = compiled.node
        prefix = f"/services/data/v{version}/sobjects/{obj_name}/"
        if not node.parents:
            pairs = node.fields
            return [
                {"attributes": {"type": obj_name, "url": prefix + row[ID]}, **{n: row[i] for n, i in pairs}}
                for row in rows
            ]
        return [_render_row(row, obj_name, node, version, False) for row in rows]

    def query(
        self, text: str, *, include_deleted: bool = False, version: str = "59.0", batch_size: int = QUERY_DEFAULT_BATCH
    ) -> dict[str, Any]:
        """The REST ``query``/``queryAll`` answer: the first batch, and a cursor when more remain."""
        with self.lock:
            compiled = self.compile_and_run(text, include_deleted=include_deleted)
            total = len(compiled.rows)
            if compiled.count_only:
                return {"totalSize": total, "done": True, "records": []}
            batch = max(QUERY_MIN_BATCH, min(batch_size, QUERY_DEFAULT_BATCH))
            body: dict[str, Any] = {"totalSize": total, "done": total <= batch}
            if total > batch:
                locator = self.new_id("QueryLocator")
                self._cursors[locator] = _Cursor(locator, compiled, batch, time.monotonic())
                self._trim_cursors()
                body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{batch}"
            body["records"] = self.render(compiled, compiled.rows[:batch], version)
            return body

    def query_more(self, cursor_text: str, *, version: str = "59.0", batch_size: int | None = None) -> dict[str, Any]:
        """The batch of a cursor at ``<locator>-<offset>`` (the tail of ``nextRecordsUrl``)."""
        with self.lock:
            locator, _, offset_text = cursor_text.partition("-")
            cursor = self._cursors.get(locator)
            now = time.monotonic()
            if cursor is None or not offset_text.isdigit() or now - cursor.last_used > CURSOR_IDLE_S:
                self._cursors.pop(locator, None)
                raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.last_used = now
            self._cursors.move_to_end(locator)
            offset = int(offset_text)
            rows = cursor.compiled.rows
            batch = cursor.batch if batch_size is None else max(QUERY_MIN_BATCH, min(batch_size, QUERY_DEFAULT_BATCH))
            end = offset + batch
            body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
            if end < len(rows):
                body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
            else:
                del self._cursors[locator]
            body["records"] = self.render(cursor.compiled, rows[offset:end], version)
            return body

    def _trim_cursors(self) -> None:
        now = time.monotonic()
        for locator in [k for k, c in self._cursors.items() if now - c.last_used > CURSOR_IDLE_S]:
            del self._cursors[locator]
        while len(self._cursors) > MAX_CURSORS:
            self._cursors.popitem(last=False)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _identity(value: Any) -> Any:
    return value


def _sort_key(column: _Column, item: soql.OrderItem) -> Callable[[list[Any]], Any]:
    """A sort key putting nulls where Salesforce does (first ascending, last descending, or as asked)."""
    nulls_first = (not item.descending) if item.nulls_first is None else item.nulls_first
    # with reverse=True the low rank ends up last
    null_rank = (0 if nulls_first else 2) if not item.descending else (2 if nulls_first else 0)
    get = column.get
    fold = column.field.is_text

    def key(row: list[Any]) -> tuple[int, Any]:
        value = get(row)
        if value is None:
            return (null_rank, 0)
        return (1, value.casefold() if fold else value)

    return key


def _render_row(row: list[Any], obj_name: str, node: _Node, version: str, polymorphic: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {
            "type": "Name" if polymorphic else obj_name,
            "url": f"/services/data/v{version}/sobjects/{obj_name}/{row[ID]}",
        }
    }
    for kind, i in node.order:
        if kind == "f":
            name, index = node.fields[i]
            out[name] = row[index] if index < len(row) else None
            continue
        rel_name, ref_index, poly, targets = node.parents[i]
        parent_id = row[ref_index]
        entry = targets.get(parent_id[:3]) if parent_id else None
        parent = entry[0].rows.get(parent_id) if entry is not None and parent_id else None
        if entry is None or parent is None:
            out[rel_name] = None
        else:
            out[rel_name] = _render_row(parent, entry[0].obj.name, entry[1], version, poly)
    return out


class QueryRoutes(SalesforceRoutes):
    """``/query``, ``/queryAll`` and their ``nextRecordsUrl``."""

    @staticmethod
    def _batch_size(request: Request) -> int | None:
        options = request.headers.get("Sforce-Query-Options", "")
        for part in options.split(","):
            name, _, value = part.partition("=")
            if name.strip().lower() == "batchsize" and value.strip().isdigit():
                return int(value.strip())
        return None

    def _run_query(self, request: Request, version: str, *, include_deleted: bool) -> Response:
        text = request.args.get("q")
        if text is None:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        batch = self._batch_size(request) or QUERY_DEFAULT_BATCH
        return json_response(self.org.query(text, include_deleted=include_deleted, version=version, batch_size=batch))

    def _query(self, request: Request, version: str) -> Response:
        return self._run_query(request, version, include_deleted=False)

    def _query_all(self, request: Request, version: str) -> Response:
        return self._run_query(request, version, include_deleted=True)

    def _query_more(self, request: Request, version: str, cursor: str) -> Response:
        return json_response(self.org.query_more(cursor, version=version, batch_size=self._batch_size(request)))
