"""One lead's ``Score`` and its explanation, built in one place for both evaluation paths.

From the rules that fired (``compiler.Result``: rule, units, count, value, in rule order) it builds the
hits (frozen and shared when identical), the synthetic ``"<part> cap"`` hits, total, parts, grade,
qualification with hysteresis, and the ``reasons`` text.
"""

from __future__ import annotations

from datetime import datetime

from ._values import UNIT, as_aware
from .compiler import ConditionRule, Result
from .model import QualificationState, RuleHit, Score, TGrade, TPart
from .points import points_text
from .rules import PARTS, Reasons

#: at most this many distinct hits / reason pieces are kept per rule for sharing
_HIT_CACHE = 4096


class ScoreBuilder:
    """Builds ``Score`` objects for one compiled rule set (its thresholds, caps and reason settings)."""

    def __init__(
        self,
        compiled: list[ConditionRule],
        *,
        caps: dict[TPart, int | None],
        thresholds: tuple[float, float, float, float],
        reasons: Reasons,
        version: str,
    ) -> None:
        """``thresholds``: qualify, release, hot, warm (as ``CompiledRules`` holds them)."""
        self._rules = compiled
        self.caps = caps
        self.version = version
        self.mql_threshold, self.release_threshold, self.hot_threshold, self.warm_threshold = thresholds
        self._max_hits = reasons.max_hits
        self._max_length = reasons.max_length

    def assemble(
        self, lead_id: str, results: list[Result], previous: QualificationState | None, now: datetime
    ) -> Score:
        """The one place a ``Score`` is built, for both paths. ``results`` are in rule order."""
        hits: list[RuleHit] = []
        sums = [0, 0, 0]
        for rule, units, count, value in results:
            # identical hits are frequent (same title, same counter value...): share the frozen objects
            key = (units, count, value)
            found = rule.hit_cache.get(key)
            if found is None:
                if len(rule.hit_cache) >= _HIT_CACHE:
                    rule.hit_cache.clear()
                found = rule.hit_cache[key] = RuleHit(
                    rule.name, rule.part, units / UNIT, value, count, rule.hit_label(value)
                )
            hits.append(found)
            sums[rule.part_no] += units
        for p, part in enumerate(PARTS):
            cap = self.caps[part]
            if cap is None:
                continue
            s = sums[p]
            capped = max(s, -cap) if p == 2 else min(s, cap)
            if capped != s:
                # after the part's last hit, so that hits stay grouped by part
                where = sum(1 for h in hits if PARTS.index(h.part) <= p)
                hits.insert(
                    where,
                    RuleHit(
                        f"{part} cap", part, (capped - s) / UNIT, f"capped at {points_text(cap)}", 1, f"{part} cap"
                    ),
                )
                sums[p] = capped
        raw = sums[0] + sums[1] + sums[2]
        half = UNIT // 2
        total = min(max((raw + half) // UNIT, 0), 100)
        grade: TGrade = "hot" if total >= self.hot_threshold else "warm" if total >= self.warm_threshold else "cold"
        was = previous is not None and previous.qualified
        qualified = total >= (self.release_threshold if was else self.mql_threshold)
        qualified_at: datetime | None = None
        if qualified:
            kept = previous.qualified_at if (was and previous is not None) else None
            qualified_at = as_aware(kept) if kept is not None else now
        return Score(
            lead_id,
            total,
            (sums[0] + half) // UNIT,
            (sums[1] + half) // UNIT,
            (sums[2] + half) // UNIT,
            grade,
            qualified,
            qualified_at,
            tuple(hits),
            self.version,
            self._reasons(results),
            raw_total=raw / UNIT,
        )

    def _reasons(self, results: list[Result]) -> str:
        """``+15 VP title; +10 pricing page x3; -10 free email``: the strongest hits (by absolute points,
        then rule order) that round to at least 1 point, at most ``max_hits``, within ``max_length``."""
        half = UNIT // 2
        ranked = [(-abs(u), r.index, u, c, v) for r, u, c, v in results if u >= half or u <= -half]
        if not ranked:
            return ""
        ranked.sort()
        rules = self._rules
        text = ""
        for _, index, units, count, value in ranked[: self._max_hits]:
            rule = rules[index]
            whole = (units + half) // UNIT if units > 0 else -((half - units) // UNIT)
            shown = count if count > 1 and rule.type not in ("condition", "table") else 1
            key = (whole, shown, value if rule.label_varies else "")
            piece = rule.piece_cache.get(key)
            if piece is None:
                if len(rule.piece_cache) >= _HIT_CACHE:
                    rule.piece_cache.clear()
                label = rule.hit_label(value)
                piece = f"{'-' if whole < 0 else '+'}{abs(whole)} {label}" + (f" x{shown}" if shown > 1 else "")
                rule.piece_cache[key] = piece
            candidate = piece if not text else f"{text}; {piece}"
            if len(candidate) > self._max_length:
                if not text:
                    text = piece[: self._max_length - 1] + "…"
                break
            text = candidate
        return text
