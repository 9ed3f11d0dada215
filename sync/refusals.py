"""Records the CRM sent malformed, refused one by one so that the rest of the pass goes on.

A page that cannot be trusted as a whole (truncated JSON, a gateway's HTML page, an answer that stalls) is
the connectors' business: it raises ``MalformedResponse`` or a timeout and the call is retried
(``connectors._retry``). A well-formed page may still carry one record that cannot be scored safely; such a
record is refused here, before it is cached, scored or written, so that no score is computed from what the
CRM did not really hold:

- ``id_type``: the connector saw its id sent as another JSON type than the documented string (a number may
  have lost digits on the way and name another record);
- ``no_id``: no usable id at all (counted as ``bad_records`` too, as before);
- ``oversized``: a value longer than ``max_value_chars`` (8 Mi characters by default): far beyond what any
  CRM keeps in a property (HubSpot 65,536 characters, Salesforce long text 131,072), so it is garbage an
  integration or a proxy put there, not a value (shorter overlong values are scored, and cut in the cache);
- ``unknown_option``: a restricted enumeration (every HubSpot enumeration, a restricted Salesforce picklist)
  holding a value that is none of its options, when a rule reads that field: the CRM refuses to store such a
  value, so the record was not sent as the CRM holds it, and the rule would score it as something else.

Each refusal carries the CRM's context (object, record id, the call that returned it, what was wrong), is
logged as ``crm.record_refused`` and counted in the run summary (``records_refused``, ``refused_by_reason``,
the first ``REFUSALS_KEPT`` in ``refusals``); a pass that refused any ends with status ``partial``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from connectors.base import RawRecord
from mappings import LeadMapping
from scoring.rules import Rules, attribute_references

__all__ = ["MAX_VALUE_CHARS", "REASONS", "REFUSALS_KEPT", "RecordScreen", "Refusal", "tally"]

log = structlog.get_logger("leadsync.sync")

#: the longest value a record may carry (characters); a longer one gets its record refused
MAX_VALUE_CHARS = 8 * 1024 * 1024
#: why a record is refused (the ``reason`` label of ``leadsync_records_refused_total``)
REASONS = ("id_type", "no_id", "oversized", "unknown_option")
#: refusals kept in a run's summary with their context (``records_refused`` counts them all)
REFUSALS_KEPT = 20
#: an unknown option is quoted in a message up to this many characters
_SHOWN = 60

#: object type -> enumeration field -> its options (a connector's ``enumerations``)
Enumerations = Callable[[str], Mapping[str, frozenset[str]]]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One record refused, with the CRM's context."""

    crm: str
    object_type: str
    record_id: str
    call: str
    reason: str  #: one of :data:`REASONS`
    problem: str

    def __str__(self) -> str:
        where = f" ({self.call})" if self.call else ""
        return f"{self.crm} {self.object_type} {self.record_id or '(no id)'}{where}: {self.problem}"

    def as_dict(self) -> dict[str, str]:
        return {
            "object": self.object_type,
            "id": self.record_id,
            "call": self.call,
            "reason": self.reason,
            "problem": self.problem,
        }


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "...")


class RecordScreen:
    """Splits a page into the records that may be scored and the refused ones (see the module docstring)."""

    def __init__(
        self,
        crm: str,
        mapping: LeadMapping,
        rules: Iterable[Rules],
        *,
        enumerations: Enumerations | None = None,
        max_value_chars: int = MAX_VALUE_CHARS,
    ) -> None:
        self.crm = crm
        self.mapping = mapping
        self.enumerations = enumerations
        self.max_value_chars = max_value_chars
        #: attribute -> the first rule that reads it (lead attributes only: activities are not records)
        self._readers: dict[str, str] = {}
        for ruleset in rules:
            for ref in attribute_references(ruleset):
                if not ref.activity:
                    self._readers.setdefault(ref.attribute, ref.rule)
        self._watched: dict[str, dict[str, tuple[str, str]]] = {}

    def watched(self, object_type: str) -> dict[str, tuple[str, str]]:
        """CRM field -> (attribute, rule) of the fields of ``object_type`` the rules read."""
        if object_type not in self._watched:
            fields: dict[str, tuple[str, str]] = {}
            for attribute, spec in self.mapping.fields_for(object_type).items():
                rule = self._readers.get(attribute)
                if rule is not None:
                    for source in spec.sources:
                        fields.setdefault(source, (attribute, rule))
            self._watched[object_type] = fields
        return self._watched[object_type]

    def screen(self, page: Sequence[RawRecord]) -> tuple[list[RawRecord], list[Refusal]]:
        """(records to score, records refused), each in the page's order."""
        usable: list[RawRecord] = []
        refused: list[Refusal] = []
        for record in page:
            found = self.problem(record)
            if found is None:
                usable.append(record)
            else:
                reason, problem = found
                refused.append(Refusal(self.crm, record.object_type, record.id, record.origin, reason, problem))
        return usable, refused

    def problem(self, record: RawRecord) -> tuple[str, str] | None:
        """(reason, what was wrong) when ``record`` must be refused, else None."""
        if record.refused is not None:
            return "id_type", record.refused
        if not record.id or not record.id.strip() or record.id == "None":
            return "no_id", "the record has no usable id: it cannot be cached, scored or written back"
        for name, value in record.properties.items():
            if isinstance(value, str) and len(value) > self.max_value_chars:
                return "oversized", (
                    f"property {name} is {len(value):,} characters long, over the {self.max_value_chars:,} a value "
                    "may have (sync.max_value_chars; no CRM keeps a property this long)"
                )
        return self._unknown_option(record)

    def _unknown_option(self, record: RawRecord) -> tuple[str, str] | None:
        if self.enumerations is None:
            return None
        watched = self.watched(record.object_type)
        if not watched:
            return None
        options = self.enumerations(record.object_type)
        for name, (attribute, rule) in watched.items():
            allowed = options.get(name)
            value: Any = record.properties.get(name)
            if not allowed or not isinstance(value, str) or not value.strip():
                continue
            unknown = [v for v in value.split(";") if v.strip() and v not in allowed]  # a multi-select: each one
            if unknown:
                return "unknown_option", (
                    f"property {name} = {_shown(unknown[0])} is none of its {len(allowed)} options (the CRM "
                    f"stores no other value), and rule {rule!r} reads it as {attribute}"
                )
        return None


def tally(refused: Iterable[Refusal], by_reason: dict[str, int], kept: list[dict[str, str]]) -> int:
    """Log each refusal (``crm.record_refused``), count it by reason, keep the first ``REFUSALS_KEPT`` with
    their context; returns how many had no usable id (the summary's ``bad_records``)."""
    no_id = 0
    for refusal in refused:
        log.warning("crm.record_refused", crm=refusal.crm, reason=refusal.reason, message=str(refusal))
        by_reason[refusal.reason] = by_reason.get(refusal.reason, 0) + 1
        no_id += refusal.reason == "no_id"
        if len(kept) < REFUSALS_KEPT:
            kept.append(refusal.as_dict())
    return no_id
