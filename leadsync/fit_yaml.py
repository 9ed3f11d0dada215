"""The fitted config as a person reads it: the mapping used, ``scoring:`` with one lookup table per rule,
and comments giving each table value's training count and conversion rate, the cross-validated AUC, the
data file's sha256 and row count, and the options.

Written line by line (PyYAML cannot keep comments), with every text scalar in JSON's double-quoted form,
which YAML reads as the same text; the same fit gives the same bytes (no dates, no dict-order accidents).
:func:`check_rendered` loads the text back exactly as ``leadsync score --config`` would.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

import yaml

from mappings import LeadMapping, MappingError, load_mapping
from scoring import CompiledRules, ScoringError
from scoring.fit.binning import BinOptions, Bins
from scoring.fit.scorecard import Table
from scoring.model import COUNTERS

if TYPE_CHECKING:
    from leadsync.fit_cmd import FitResult

_LABEL_MAX = 60
_COMMENT_AT = 44


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _rate(positives: int, count: int) -> str:
    return f"{count:,} leads, {positives / count:.1%} converted" if count else "no leads in training"


def _arg(column: str) -> str:
    """A column as a shell argument (quoted when it holds spaces or other specials)."""
    return f"'{column}'" if re.search(r"[^A-Za-z0-9_.,-]", column) else column


def _quantiles(n: int) -> str:
    return {4: "quartiles", 10: "deciles", 20: "ventiles"}.get(n, f"{n}-quantiles")


def _line(text: str, comment: str = "") -> str:
    return f"{text.ljust(_COMMENT_AT)}  # {comment}" if comment else text


def render(result: FitResult) -> str:
    sc = result.scorecard
    data = result.data
    n, positives = len(data.outcomes), int(data.outcomes.sum())
    auc = sc.cv_auc
    rec = sc.evaluation.recommendation
    s = result.settings
    history = result.history
    first = "--from-history" + (f" --until {history['until']}" if history and history["until"] else "")
    options = [
        first if history is not None else f"--label {s.label}",
        f"--max-rules {s.max_rules}",
        f"--objective {s.objective}",
        f"--seed {s.seed}",
    ]
    options += [f"--exclude {_arg(c)}" for c in s.exclude] + [f"--allow-leaky {_arg(c)}" for c in s.allow_leaky]
    odds = math.exp(sc.logit_at_zero)
    b = BinOptions()
    lines = [
        "# Points fitted from outcomes by `leadsync rules fit`. Edit them like any rules; mark a rule",
        "# `locked: true` to keep its points when you fit again, then `leadsync preview --rules` this file.",
        "#",
        f"# data: {data.source.name} (sha256 {data.sha256})",
        f"#   {data.read:,} rows read, {n:,} labeled ({positives:,} converted, {positives / n:.1%}), "
        f"{data.unlabeled:,} unlabeled, {len(data.rejected):,} unreadable rows skipped",
        f"# options: {' '.join(options)}",
        f"# binning: {_quantiles(b.initial_bins)} cut at 2 significant digits, merged while neighbours do not "
        "differ (chi-square,",
        f"#   p > 0.05), hold under {b.min_bin_share:.0%} of leads or are more than {b.max_bins}; values held by "
        f"under {b.min_category_share:.0%} of leads share `default`",
        f"# fit: L1 logistic regression on the bins, penalty {sc.penalty:.3g} chosen by {len(sc.fold_aucs)}-fold "
        "cross-validation",
        f"#   (the sparsest within 0.001 of the best mean fold AUC), at most {s.max_rules} rules with points",
        f"# cross-validated AUC {auc.value:.3f} (95% CI {auc.ci_low:.3f} to {auc.ci_high:.3f}); "
        f"folds {' '.join(f'{a:.3f}' for a in sc.fold_aucs)}",
        f"# {result.rules} fitted rules; their totals span 0..{sum(max(t.points) for t in sc.tables)} "
        "(each table's lowest value is 0, so no lead is cut off at 0 or 100)",
        f"# points to double the odds: {sc.points_to_double_odds:.1f} (a total of 0 means odds of "
        f"{odds:.3g}, i.e. {odds / (1 + odds):.1%} convert)",
    ]
    if rec.threshold is not None and rec.stats is not None:
        c = rec.stats
        precision = "n/a" if c.precision is None else f"{c.precision:.1%}"
        lines.append(
            f"# MQL threshold {result.threshold} ({rec.objective}): {rec.reason}; on the training leads "
            f"{c.mqls:,} MQLs, precision {precision}, recall {c.recall:.1%}"
        )
    else:
        lines.append(f"# MQL threshold {result.threshold}: no recommendation ({rec.objective}: {rec.reason})")
    lines.append("# grades: warm from the threshold, hot where the odds are 4 times the threshold's")
    if result.excluded:
        lines.append("# left out:")
        lines += [f"#   {column}: {why}" for column, why in result.excluded.items()]
    for column, value in sorted(result.leaky.items()):
        lines.append(f"#   kept with --allow-leaky: {column} alone has AUC {value:.3f}")
    if result.bad_values:
        lines.append(
            "# values unreadable as their type (read as missing): "
            + ", ".join(f"{column} {count:,}" for column, count in sorted(result.bad_values.items()))
        )
    for token, columns in result.placeholders.items():
        lines.append(
            f"# read as missing: {_text(token)}, a form's placeholder (frequent in {', '.join(columns)}); "
            "csv.null_values in --config decides instead"
        )
    if history is not None:
        lines.append("# point in time: attributes and activity counts as of before each lead's outcome moment; never")
        lines.append(f"#   candidates (they leak by construction): {', '.join(history['left_out']) or 'none'}")
        lines.append("# a rules file for the CRM config: `leadsync evaluate --rules` it, or set it as challenger.rules")
    else:
        lines += _mapping_lines(result)
    lines += ["scoring:", "  base: none", "  qualification:", f"    threshold: {result.threshold}"]
    lines += ["  grades:", f"    hot: {result.grades['hot']}", f"    warm: {result.grades['warm']}"]
    for key, value in result.settings_kept.items():
        lines += _dump({key: value}, "  ")
    attribute_columns = {c.attribute: c.column for c in result.candidates}
    for part in ("fit", "engagement", "penalties"):
        locked = result.locked.get(part, [])
        events = history["events"] if history is not None else {}
        tables = [t for t in sc.tables if ("engagement" if t.name in events else _part(t)) == part]
        if not locked and not tables:
            continue
        lines.append(f"  {part}:")
        for rule in locked:
            lines.append("    # locked: kept as written in the config, points included")
            lines += _dump([rule], "    ")
        for table in tables:
            if table.name in events:
                lines += _event_lines(table, events[table.name])
            else:
                lines += _table_lines(table, attribute_columns.get(table.name, table.name))
    return "\n".join(lines) + "\n"


def _part(table: Table) -> str:
    return "engagement" if table.name in COUNTERS else "fit"


def _mapping_lines(result: FitResult) -> list[str]:
    section = result.csv_section
    fields = dict(section.get("fields") or {})
    specs = {c.attribute: c.spec for c in result.candidates}
    for table in result.scorecard.tables:
        spec = specs[table.name]
        fields.setdefault(table.name, {"property": spec.property, "type": spec.type})
    out = ["csv:"]
    for key, value in section.items():
        if key != "fields":
            out += _dump({key: value}, "  ")
    if fields:
        out.append("  fields:")
        for attribute, spec in fields.items():
            if isinstance(spec, dict):
                inner = ", ".join(f"{k}: {v if k == 'type' else _scalar(v)}" for k, v in spec.items())
                out.append(f"    {attribute}: {{{inner}}}")
            else:
                out.append(f"    {attribute}: {_scalar(spec)}")
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return _num(value)
    return _text(str(value))


def _dump(value: Any, indent: str) -> list[str]:
    text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    return [indent + line for line in text.splitlines()]


def _table_lines(table: Table, column: str) -> list[str]:
    bins = table.bins
    pts = table.points
    out = [f"    - name: {table.name}"]
    if len(column) <= _LABEL_MAX and not any(c in column for c in ";\n\r") and column.strip():
        out.append(f"      label: {_text(column.strip())}")
    out.append(_line(f"      attribute: {table.name}", f"points vary by {table.spread:.1f} across the training leads"))
    if bins.kind == "categorical":
        out.append("      points_by_value:")
        for position, level in enumerate(bins.kept):
            key = bins.levels[level]
            shown = key if key in ("true", "false") else _text(key)
            out.append(
                _line(f"        {shown}: {pts[position]}", _rate(bins.positives[position], bins.counts[position]))
            )
        if bins.other:
            i = bins.other_index
            note = f"other values ({bins.other_levels:,} seen, each on under 1% of leads): "
            out.append(_line(f"      default: {pts[i]}", note + _rate(bins.positives[i], bins.counts[i])))
        else:
            note = _fallback(bins, "any other value", bins.other_count)
            out.append(_line(f"      default: {pts[bins.fallback]}", note))
    else:
        out.append("      points_by_range:")
        for lo, hi, p, count, positives in _bands(bins, pts):
            parts = ([f"from: {_num(lo)}"] if lo is not None else []) + (
                [f"below: {_num(hi)}"] if hi is not None else []
            )
            out.append(_line(f"        - {{{', '.join([*parts, f'points: {p}'])}}}", _rate(positives, count)))
    if bins.missing:
        i = bins.missing_index
        out.append(_line(f"      missing: {pts[i]}", _rate(bins.positives[i], bins.counts[i])))
    else:
        out.append(_line(f"      missing: {pts[bins.fallback]}", _fallback(bins, "missing", bins.missing_count)))
    return out


def _event_lines(table: Table, event: Any) -> list[str]:
    """An activity count's table as an event rule (:func:`leadsync.fit_history.event_rule`)."""
    window = f"within_days: {event.within_days}" if event.within_days else ""
    spec = ", ".join(x for x in (f"kind: {event.kind}", window) if x)
    totals = ", ".join(
        f"{c} -> {sum(event.points[:c])}" for c in range(len(event.points)) if c == 0 or event.points[c - 1]
    )
    note = "; made non-decreasing (an activity cannot take points away)" if event.flattened else ""
    out = [f"    - name: {event.name}"]
    out.append(_line(f"      event: {{{spec}}}", f"points vary by {table.spread:.1f} across the training leads"))
    out.append(_line(f"      points: [{', '.join(str(p) for p in event.points)}]", f"count -> points: {totals}{note}"))
    for lo, hi, p, count, positives in _bands(table.bins, table.points):
        what = f"{_num(lo) if lo is not None else 0}" + (f" to {_num(hi - 1)}" if hi is not None else " or more")
        out.append(f"      # {what} {event.kind}: {_rate(positives, count)} (fitted {p})")
    return out


def _fallback(bins: Bins, what: str, count: int) -> str:
    seen = f"{count:,} in training, too few to score apart" if count else "none in training"
    return f"{what} ({seen}): scored like {_bin_name(bins, bins.fallback)}"


def _bin_name(bins: Bins, index: int) -> str:
    if bins.kind == "categorical":
        return _text(bins.levels[bins.kept[index]]) if index < len(bins.kept) else "other values"
    edges = bins.edges
    lo = edges[index - 1] if index > 0 else None
    hi = edges[index] if index < len(edges) else None
    if lo is None and hi is None:
        return "every value"
    if lo is None:
        return f"below {_num(hi)}" if hi is not None else ""
    return f"{_num(lo)} or more" if hi is None else f"{_num(lo)} to below {_num(hi)}"


def _bands(bins: Bins, pts: tuple[int, ...]) -> list[tuple[float | None, float | None, int, int, int]]:
    """The ranges with neighbours of equal points joined (fewer lines, the same points for every value)."""
    edges = bins.edges
    out: list[list[Any]] = []
    for index in range(bins.value_bins):
        lo = edges[index - 1] if index > 0 else None
        hi = edges[index] if index < len(edges) else None
        if out and out[-1][2] == pts[index]:
            out[-1][1] = hi
            out[-1][3] += bins.counts[index]
            out[-1][4] += bins.positives[index]
        else:
            out.append([lo, hi, pts[index], bins.counts[index], bins.positives[index]])
    if len(out) == 1:  # one band with neither `from` nor `below` is not a range: keep (or make) one cut
        cut = edges[0] if edges else 0.0
        below = sum(c for c, i in zip(bins.counts, range(bins.value_bins), strict=False) if i == 0) if edges else 0
        low_pos = bins.positives[0] if edges else 0
        p, count, positives = out[0][2], out[0][3], out[0][4]
        out = [[None, cut, p, below, low_pos], [cut, None, p, count - below, positives - low_pos]]
    return [(a, b, c, d, e) for a, b, c, d, e in out]


class RenderedError(Exception):
    """The rendered file does not load (a bug, or an engine without lookup tables)."""


def check_rendered(text: str, crm_mapping: LeadMapping | None = None) -> CompiledRules:
    """Load the rendered config exactly as ``leadsync score --config`` does (mapping, then rules); a rules
    file from the store (``crm_mapping``) as ``evaluate --rules`` loads it with the CRM's mapping."""
    from leadsync.app import load_scoring
    from leadsync.config import ConfigError, split_csv_section

    data = yaml.safe_load(text)
    try:
        mapping = crm_mapping or load_mapping(
            "csv", split_csv_section(data.get("csv"), "the fitted config")[0], source="csv"
        )
        return load_scoring(data["scoring"], mapping)
    except (MappingError, ScoringError, ConfigError) as exc:
        raise RenderedError(f"the fitted config does not load: {exc}") from None
