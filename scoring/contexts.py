"""What compiled rules are evaluated on: the settings they share, one lead's row, one batch's columns.

``Env`` is built once per rule set (the email checker, which attributes derive ``company_email`` and
``last_engaged_at``, which activity kinds any rule reads); ``LeadRow`` is one lead on the single-lead
path, its activities grouped by kind; ``BatchView`` is a ``LeadBatch`` on the columnar path, with its
derived columns, email flags and kind masks computed once per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from . import emails
from ._values import DAY_US, datetime_of_micros, micros_of_datetime, to_micros
from .columns import I64, LEAD_FIELDS, NO_TIME, Bools, Column, LeadBatch
from .emails import EmailChecker
from .model import Activity, Lead
from .predicates import Getter
from .rules import DERIVED_ATTRIBUTES, Rules


class Env:
    """What every compiled rule shares: the email checker and the settings of derived attributes."""

    def __init__(self, rules: Rules) -> None:
        e = rules.emails
        self.checker = EmailChecker(
            role_local_parts=e.role_local_parts,
            competitor_domains=e.competitor_domains,
            extra_free_domains=e.extra_free_domains,
            extra_disposable_domains=e.extra_disposable_domains,
        )
        self.email_attributes = ("email", *[a for a in e.secondary_attributes if a != "email"])
        self.timestamp_attributes = rules.activity.timestamp_attributes
        self.ignore_kinds = frozenset(rules.activity.ignore_kinds)
        self.used_kinds: set[str] = set()

    def lead_getter(self, name: str) -> Getter:
        if name == "email_domain":
            return LeadRow.email_domain
        if name == "company_email":
            return LeadRow.company_email
        if name == "last_engaged_at":
            return LeadRow.last_engaged_at
        if name in LEAD_FIELDS:
            get = attrgetter(name)
            return lambda row: get(row.lead)
        return lambda row: row.lead.attributes.get(name)

    @staticmethod
    def activity_getter(name: str) -> Getter:
        if name == "kind":
            return attrgetter("kind")
        if name == "timestamp":
            return attrgetter("timestamp")
        return lambda activity: activity.attributes.get(name)


def raw_lead_value(lead: Lead, name: str) -> Any:
    return getattr(lead, name) if name in LEAD_FIELDS else lead.attributes.get(name)


class LeadRow:
    """One lead being scored on the row path, with its activities grouped by kind."""

    __slots__ = ("_company", "_engaged", "by_kind", "env", "latest_activity", "lead", "now_us")

    def __init__(self, lead: Lead, activities: Sequence[Activity], now_us: int, env: Env) -> None:
        self.lead = lead
        self.now_us = now_us
        self.env = env
        by_kind: dict[str, list[tuple[int, int, int, Activity]]] = {}
        latest: int | None = None
        used = env.used_kinds
        ignore = env.ignore_kinds
        today = now_us // DAY_US
        for idx, activity in enumerate(activities):
            kind = activity.kind
            ts = micros_of_datetime(activity.timestamp)
            if kind not in ignore and (latest is None or ts > latest):
                latest = ts
            if kind in used:
                age = today - ts // DAY_US  # calendar days, as _values.age_days
                group = by_kind.get(kind)
                if group is None:
                    group = by_kind[kind] = []
                group.append((idx, ts, age if age > 0 else 0, activity))
        self.by_kind = by_kind
        self.latest_activity = latest
        self._company: str | Literal[False] | None = False
        self._engaged: datetime | Literal[False] | None = False

    def email_domain(self) -> str | None:
        return self.env.checker.domain_of(self.lead.email)

    def company_email(self) -> str | None:
        if self._company is False:
            found: str | None = None
            for name in self.env.email_attributes:
                found = self.env.checker.first_company_address(raw_lead_value(self.lead, name))
                if found is not None:
                    break
            self._company = found
        return self._company

    def last_engaged_at(self) -> datetime | None:
        """The latest of created_at, the configured timestamp attributes and the lead's own activities."""
        if self._engaged is False:
            best = self.latest_activity
            for name in ("created_at", *self.env.timestamp_attributes):
                micros = to_micros(raw_lead_value(self.lead, name))
                if micros is not None and (best is None or micros > best):
                    best = micros
            self._engaged = None if best is None else datetime_of_micros(best)
        return self._engaged


class BatchView:
    """One batch being scored on the columnar path."""

    def __init__(self, batch: LeadBatch, now_us: int, env: Env) -> None:
        self.batch = batch
        self.n = batch.n
        self.now_us = now_us
        self.env = env
        # calendar-day ages, as _values.age_days
        self.act_days: I64 = np.maximum(now_us // DAY_US - batch.activity_micros // DAY_US, 0)
        self._derived: dict[str, Column] = {}
        self._flags: dict[int, tuple[Column, I64]] = {}
        self._kind_masks: dict[frozenset[str], Bools] = {}
        self.event_sel: dict[int, Bools] = {}

    def lead_column(self, name: str) -> Column:
        if name in DERIVED_ATTRIBUTES:
            col = self._derived.get(name)
            if col is None:
                col = self._derived[name] = getattr(self, "_derive_" + name)()
            return col
        return self.batch.lead_column(name)

    def activity_column(self, name: str) -> Column:
        return self.batch.activity_column(name)

    def flags(self, col: Column) -> I64:
        found = self._flags.get(id(col))
        if found is None:
            found = self._flags[id(col)] = (col, col.map_unique_int(self.env.checker.flags))
        return found[1]

    def kind_mask(self, kinds: Iterable[str]) -> Bools:
        key = frozenset(kinds)
        mask = self._kind_masks.get(key)
        if mask is None:
            codes, cats = self.batch.activity_kind.codes()
            table = np.array([isinstance(c, str) and c in key for c in cats], dtype=np.bool_)
            mask = self._kind_masks[key] = table[codes] if len(codes) else np.zeros(0, dtype=np.bool_)
        return mask

    def _derive_email_domain(self) -> Column:
        values = self.batch.lead_column("email").map_values(self.env.checker.domain_of)
        return Column.of(values)

    def _derive_company_email(self) -> Column:
        present = np.zeros(self.n, dtype=np.bool_)
        for name in self.env.email_attributes:
            present |= (self.flags(self.batch.lead_column(name)) & emails.COMPANY) != 0
        checker = self.env.checker
        batch = self.batch
        names = self.env.email_attributes

        def values() -> list[Any]:
            out: list[Any] = [None] * self.n
            for name in reversed(names):
                for i, found in enumerate(batch.lead_column(name).map_values(checker.first_company_address)):
                    if found is not None:
                        out[i] = found
            return out

        return Column.lazy(self.n, values, ~present)

    def _derive_last_engaged_at(self) -> Column:
        best = np.full(self.n, NO_TIME, dtype=np.int64)
        for name in ("created_at", *self.env.timestamp_attributes):
            micros, ok = self.batch.lead_column(name).micros()
            np.maximum(best, np.where(ok, micros, NO_TIME), out=best)
        if self.batch.m:
            counted = ~self.kind_mask(self.env.ignore_kinds)
            np.maximum.at(best, self.batch.activity_lead[counted], self.batch.activity_micros[counted])
        ok = best != NO_TIME
        return Column.of_micros(np.where(ok, best, 0), ok)
