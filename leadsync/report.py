"""``leadsync report``: one self-contained HTML file (inline SVG charts, no script, no external fetch).

Charts are drawn with matplotlib's SVG backend with text as paths, so the file looks the same on every
machine and opens offline. Each data mark gets an id containing ``mark`` so that a test can tell a chart
with drawn data from an empty frame.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("svg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from leadsync.evaluate_cmd import EvaluationRun
from scoring.evaluation import Evaluation

CONVERTED, NOT_CONVERTED, CANDIDATE = "#1b7f5b", "#9aa5b1", "#c75a1a"
CURRENT, RECOMMENDED = "#444444", "#c75a1a"
plt.rcParams.update(
    {
        "svg.fonttype": "path",
        "svg.hashsalt": "leadsync-report",
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
    }
)


def _svg(fig: Figure, prefix: str) -> str:
    """The figure as inline SVG, its ids prefixed so that several charts in one page never share an id."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)
    return re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{prefix}-\1"', text)


def _mark(artists: Any, name: str) -> None:
    items = artists if isinstance(artists, list | tuple) or hasattr(artists, "patches") else [artists]
    if hasattr(artists, "patches"):
        items = list(artists.patches)
    for k, artist in enumerate(items):
        artist.set_gid(f"mark-{name}-{k}")


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


# -- charts ------------------------------------------------------------------------------------------------------


def chart_distribution(ev: Evaluation) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    dist = ev.distribution
    assert dist is not None
    edges = dist.edges
    width = edges[1] - edges[0]
    npos, nneg = max(sum(dist.positives), 1), max(sum(dist.negatives), 1)
    left = edges[:-1]
    _mark(
        ax.bar(
            left,
            [c / nneg for c in dist.negatives],
            width,
            align="edge",
            color=NOT_CONVERTED,
            alpha=0.8,
            label=f"not converted ({ev.negatives:,})",
        ),
        "neg",
    )
    _mark(
        ax.bar(
            left,
            [c / npos for c in dist.positives],
            width * 0.55,
            align="edge",
            color=CONVERTED,
            alpha=0.9,
            label=f"converted ({ev.positives:,})",
        ),
        "pos",
    )
    ax.axvline(ev.threshold.threshold, color=CURRENT, ls="--", lw=1)
    ax.set(xlabel="score", ylabel="share of the group", title="Score distribution by outcome")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.legend(frameon=False)
    return fig


def chart_groups(ev: Evaluation, kind: str) -> Figure:
    rows = ev.grades if kind == "grade" else ev.deciles
    fig, ax = plt.subplots(figsize=(7 if kind == "decile" else 5, 3.2))
    labels = [r.label for r in rows]
    rates = [r.rate for r in rows]
    bars = ax.bar(labels, rates, color=CONVERTED)
    _mark(bars, kind)
    for bar, r in zip(bars, rows, strict=True):
        ax.annotate(
            f"{r.rate:.1%}\nx{r.lift:.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.axhline(ev.base_rate, color=CURRENT, ls=":", lw=1, label=f"overall {ev.base_rate:.1%}")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, max(rates) * 1.3 if rates else 1)
    title = "Conversion by grade" if kind == "grade" else "Conversion by score decile (D1 = top 10%)"
    ax.set(ylabel="converted", title=title)
    ax.legend(frameon=False, loc="upper right")
    return fig


def chart_roc(run: EvaluationRun) -> Figure:
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    pairs: list[tuple[str, Evaluation, str]] = [("configured rules", run.champion, CONVERTED)]
    if run.candidate is not None:
        pairs.append(("candidate", run.candidate, CANDIDATE))
    ax.plot([0, 1], [0, 1], color=NOT_CONVERTED, ls=":", lw=1, label="random (0.5)")
    for name, ev, color in pairs:
        a = ev.auc
        (line,) = ax.plot(
            ev.roc["fpr"],
            ev.roc["tpr"],
            color=color,
            lw=2,
            label=f"{name}: AUC {a.value:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}]",
        )
        _mark(line, f"roc-{name}")
    ax.set(
        xlabel="share of non-converters flagged",
        ylabel="share of converters flagged",
        title="ROC curve",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(frameon=False, loc="lower right", fontsize=8)
    return fig


def chart_threshold(ev: Evaluation) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    pts = ev.curve
    xs = [p.threshold for p in pts]
    (p_line,) = ax.plot(
        xs,
        [p.precision if p.precision is not None else float("nan") for p in pts],
        color=CONVERTED,
        lw=2,
        label="precision (MQLs that convert)",
    )
    (r_line,) = ax.plot(xs, [p.recall for p in pts], color="#3366aa", lw=2, label="recall (converters caught)")
    _mark([p_line, r_line], "pr")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set(xlabel="MQL threshold (score >=)", ylabel="precision / recall", ylim=(0, 1.02))
    ax2 = ax.twinx()
    weekly = all(p.mqls_per_week is not None for p in pts)
    volume = [(p.mqls_per_week if weekly else p.mqls) or 0.0 for p in pts]
    (v_line,) = ax2.plot(xs, volume, color=NOT_CONVERTED, lw=1.5, ls="-.", label="MQL volume")
    _mark(v_line, "volume")
    ax2.set_ylabel("MQLs a week" if weekly else "MQLs")
    ax2.spines["right"].set_visible(True)
    ax.axvline(ev.threshold.threshold, color=CURRENT, ls="--", lw=1.2, label=f"configured {ev.threshold.threshold:g}")
    rec = ev.recommendation
    if rec.threshold is not None:
        ax.axvline(rec.threshold, color=RECOMMENDED, ls="-", lw=1.2, label=f"recommended {rec.threshold:g}")
    lines, labels = ax.get_legend_handles_labels()
    ax.legend(
        [*lines, v_line],
        [*labels, str(v_line.get_label())],
        frameon=False,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        ncol=3,
    )
    ax.set_title("Precision, recall and MQL volume by threshold")
    return fig


def chart_rules(run: EvaluationRun, top: int = 12) -> Figure:
    rows = run.contributions[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    ys = range(len(rows))
    _mark(
        ax.barh([y + 0.2 for y in ys], [r.mean_converted for r in rows], 0.4, color=CONVERTED, label="converted"),
        "rule-pos",
    )
    _mark(
        ax.barh(
            [y - 0.2 for y in ys], [r.mean_not_converted for r in rows], 0.4, color=NOT_CONVERTED, label="not converted"
        ),
        "rule-neg",
    )
    ax.set_yticks(list(ys), [r.rule for r in rows])
    ax.axvline(0, color=CURRENT, lw=0.8)
    ax.set(xlabel="average points per lead", title="Which rules carry the converters")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    return fig


def chart_drift(ev: Evaluation) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    rows = ev.drift
    xs = list(range(len(rows)))
    (line,) = ax.plot(xs, [r.mean_score for r in rows], color=CONVERTED, lw=2, marker="o", ms=3, label="mean score")
    _mark(line, "drift")
    ax.set(ylabel="mean score", title=f"Score over time (by {ev.drift_period} of the lead's date)")
    ax2 = ax.twinx()
    (rate,) = ax2.plot(xs, [r.rate for r in rows], color=CANDIDATE, lw=1.2, ls="--", label="converted")
    (mql,) = ax2.plot(xs, [r.share_mql for r in rows], color=NOT_CONVERTED, lw=1.2, ls=":", label="share MQL")
    _mark([rate, mql], "drift-rate")
    ax2.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax2.spines["right"].set_visible(True)
    step = max(1, len(rows) // 8)
    ax.set_xticks(xs[::step], [r.period for r in rows][::step], rotation=30, ha="right", fontsize=8)
    ax.legend(
        [line, rate, mql],
        ["mean score", "converted (right axis)", "share MQL (right axis)"],
        frameon=False,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        ncol=3,
    )
    return fig


def chart_challenger(run: EvaluationRun) -> Figure:
    """Cumulative gains: share of leads taken by score (best first) vs share of converters found."""
    assert run.candidate is not None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot([0, 1], [0, 1], color=NOT_CONVERTED, ls=":", lw=1, label="random")
    for name, ev, color in (("configured rules", run.champion, CONVERTED), ("candidate", run.candidate, CANDIDATE)):
        points = sorted((p.mqls / ev.n, p.recall) for p in ev.curve)
        xs, ys = [0.0] + [x for x, _ in points], [0.0] + [y for _, y in points]
        (line,) = ax.plot(xs, ys, color=color, lw=2, label=f"{name} (AUC {ev.auc.value:.3f})")
        _mark(line, f"gains-{name}")
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set(
        xlabel="leads taken, highest scores first",
        ylabel="converters found",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="Configured rules vs candidate",
    )
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    return fig


# -- page --------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;max-width:960px;margin:2rem auto;
padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}.sub{color:#616e7c;margin-top:0}
.summary{background:#f5f7fa;border-left:4px solid #1b7f5b;padding:.8rem 1rem;margin:1.2rem 0}
figure{margin:1.8rem 0}figcaption{color:#52606d;font-size:.92rem;margin-top:.3rem}
figure svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0}
td,th{padding:.25rem .7rem;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}.warn{color:#b44d12}
"""


def _figure(prefix: str, make: Callable[[], Figure], caption: str) -> str:
    return f'<figure class="chart">{_svg(make(), prefix)}<figcaption>{html.escape(caption)}</figcaption></figure>'


def summary_text(run: EvaluationRun) -> str:
    ev, d = run.champion, run.data
    a = ev.auc
    quality = (
        "separates converters well"
        if a.value >= 0.75
        else "separate converters somewhat"
        if a.value >= 0.6
        else "barely separate converters from the rest"
    )
    top = ev.deciles[0] if ev.deciles else None
    t = ev.threshold
    parts = [
        f"Of {ev.n:,} labeled leads in {d.source.name}, {ev.positives:,} converted ({ev.base_rate:.1%}).",
        f"The configured rules {quality}: AUC {a.value:.3f} (95% interval {a.ci_low:.3f} to {a.ci_high:.3f}; "
        "0.5 is a coin toss, 1.0 is perfect).",
    ]
    if top is not None:
        parts.append(
            f"The top 10% of scores convert at {top.rate:.1%}, {top.lift:.1f} times the average, "
            f"and hold {top.capture:.0%} of all converters."
        )
    volume = f", {t.mqls_per_week:.1f} a week" if t.mqls_per_week is not None else ""
    parts.append(
        f"At the configured MQL threshold of {t.threshold:g}, {t.mqls:,} leads are MQLs{volume}; "
        f"{_pct(t.precision)} of them converted and they include {_pct(t.recall)} of all converters."
    )
    rec = ev.recommendation
    if rec.change is not None:
        parts.append(
            f"Under the objective {rec.objective}, the recommended threshold is {rec.threshold:g}: "
            f"{rec.change.summary}."
        )
    else:
        parts.append(f"No threshold recommended for {rec.objective}: {rec.reason}.")
    if run.comparison is not None:
        parts.append(run.comparison.summary + ".")
    if d.unlabeled or d.rejected:
        parts.append(f"{d.unlabeled:,} unlabeled rows and {len(d.rejected):,} unreadable rows were left out.")
    return " ".join(parts)


def _threshold_table(run: EvaluationRun) -> str:
    ev = run.champion
    rows = [("configured", ev.threshold)]
    if ev.recommendation.stats is not None:
        rows.append((f"recommended ({ev.recommendation.objective})", ev.recommendation.stats))
    body = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{s.threshold:g}</td><td>{s.mqls:,}</td>"
        f"<td>{'' if s.mqls_per_week is None else f'{s.mqls_per_week:.1f}'}</td>"
        f"<td>{_pct(s.precision)}</td><td>{_pct(s.recall)}</td></tr>"
        for name, s in rows
    )
    return (
        "<table><tr><th>threshold</th><th>score &gt;=</th><th>MQLs</th><th>a week</th><th>converted</th>"
        f"<th>converters caught</th></tr>{body}</table>"
    )


def render_report(
    run: EvaluationRun,
    *,
    generated: datetime | None = None,
    shadow: Sequence[str] | None = None,
    model: str | None = None,
) -> str:
    """The whole report as one HTML string; ``shadow``: the shadow challenger's comparison, line by line
    (champion vs challenger on the same leads, and with a split each arm's conversion and its test);
    ``model``: the predictive model's section (:func:`leadsync.report_model.model_section`)."""
    ev, d = run.champion, run.data
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    figures = [
        _figure(
            "dist",
            lambda: chart_distribution(ev),
            "Each bar is the share of its group at that score: the more the green bars sit to the right of "
            "the grey ones, the better the score tells converters apart. The dashed line is the MQL threshold.",
        ),
    ]
    if ev.grades:
        figures.append(
            _figure(
                "grade",
                lambda: chart_groups(ev, "grade"),
                "Conversion rate of each grade (x: lift over the overall rate, dotted line): "
                "hot should convert clearly more than warm, and warm more than cold.",
            )
        )
    figures += [
        _figure(
            "decile",
            lambda: chart_groups(ev, "decile"),
            "Leads sorted by score into ten groups of about equal size (tied scores stay together, so a "
            "group may be larger or missing): conversion should fall "
            "from D1 to D10; a flat profile means the score does not rank buyers.",
        ),
        _figure(
            "roc",
            lambda: chart_roc(run),
            "How many converters (up) each threshold catches for how many non-converters (right): the "
            "further the curve bows to the top left, the better; AUC is the area under it, with its 95% interval.",
        ),
        _figure(
            "threshold",
            lambda: chart_threshold(ev),
            "Raising the threshold makes MQLs convert better (precision) but catches fewer converters (recall) "
            "and sends sales fewer leads (volume, right axis); the vertical lines are the configured and the "
            "recommended thresholds.",
        ),
        _figure(
            "rules",
            lambda: chart_rules(run),
            "Average points each rule gave converted and not converted leads, biggest gap first: a rule whose "
            "green bar is no longer than its grey one does not help find buyers.",
        ),
    ]
    if ev.drift and len(ev.drift) >= 2:
        figures.append(
            _figure(
                "drift",
                lambda: chart_drift(ev),
                f"Mean score, share of MQLs and conversion of the leads of each {ev.drift_period} "
                f"(by {d.date_column}): a score that moves while conversion does not is drifting.",
            )
        )
    if run.candidate is not None:
        figures.append(
            _figure(
                "challenger",
                lambda: chart_challenger(run),
                "Working down each rule set's scores from the top, the share of all converters found on the "
                "same leads: the higher curve finds buyers sooner. The ROC chart above shows both.",
            )
        )
    challenger = ""
    if shadow:
        lines = "".join(f"<li>{html.escape(line)}</li>" for line in shadow)
        challenger = (
            "<h2>Shadow challenger</h2><ul>" + lines + "</ul>"
            '<p class="sub">Both rule sets scored every lead each pass; each is judged by the score it gave '
            "before the outcome. A significant split difference means sales converted more of one arm's picks.</p>"
        )
    rejected = ""
    if d.rejected:
        shown = "".join(f"<li>{html.escape(p)}</li>" for p in d.rejected[:10])
        rejected = f'<p class="warn">Unreadable rows left out ({len(d.rejected)}):</p><ul>{shown}</ul>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Is the scoring working? {html.escape(d.source.name)}</title><style>{_CSS}</style></head><body>"
        "<h1>Is the scoring working?</h1>"
        f'<p class="sub">{html.escape(str(d.source))}, label column <code>{html.escape(d.label)}</code>; '
        f"rules {html.escape(d.champion.compiled.version)}; ranked by {html.escape(run.rank_by)}; generated {when}</p>"
        f'<p class="summary">{html.escape(summary_text(run))}</p>'
        f"{_threshold_table(run)}{''.join(figures)}{challenger}{model or ''}{rejected}"
        '<p class="sub">Scores must be those the leads had before their outcome: a score taken after conversion '
        "includes the sales cycle's own engagement and flatters any model.</p>"
        "</body></html>"
    )
