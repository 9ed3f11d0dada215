"""leadsync evaluate / report on labeled CSVs made from the synthetic portal (whose hidden propensity decides who
converted), and the report rendered in headless Debian chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from connectors.sandbox.synthetic import iter_people
from leadsync.cli import app

runner = CliRunner()
AS_OF = "2025-06-01T00:00:00+00:00"
COLUMNS = [
    "email", "job_title", "company", "employees", "annual_revenue", "industry", "country", "created_at",
    "work_email", "page_views", "visits", "form_submissions", "email_opens", "email_clicks", "email_replies",
    "last_visit_at", "converted",
]  # fmt: skip


def write_labeled(path: Path, n: int, seed: int = 3) -> None:
    from datetime import datetime

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for p in iter_people(n, seed=seed, now=datetime.fromisoformat(AS_OF)):
            writer.writerow([
                p.email, p.job_title, p.company, p.employees or "", p.annual_revenue or "", p.industry, p.country,
                p.created_at.isoformat(), p.work_email, p.page_views, p.visits, p.form_submissions, p.email_opens,
                p.email_clicks, p.email_replies, p.last_visit_at.isoformat() if p.last_visit_at else "",
                "Yes" if p.converted else "no",
            ])  # fmt: skip


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "labeled.csv"
    write_labeled(path, 3000)
    return path


@pytest.fixture(scope="module")
def no_engagement(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "no-engagement.yaml"
    path.write_text("scoring:\n  engagement: []\n")
    return path


def run_json(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["evaluate", *args, "--as-of", AS_OF, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_evaluate_json_keys_and_auc_equal_sklearn(labeled: Path, tmp_path: Path) -> None:
    data = run_json("--input", str(labeled), "--label", "converted", "--objective", "capacity:20/week")
    assert {
        "input", "label", "rows", "labeled", "unlabeled", "rows_rejected", "n", "positives", "negatives", "auc",
        "grades", "deciles", "threshold", "recommendation", "configured_threshold", "rules", "candidate", "comparison",
    } <= data.keys()  # fmt: skip
    assert data["rows"] == data["labeled"] == data["n"] == 3000 and data["positives"] >= 30
    assert 0.65 < data["auc"]["value"] < 0.95 and data["auc"]["ci_low"] < data["auc"]["value"]
    assert data["recommendation"]["threshold"] is not None and data["recommendation"]["change"]["summary"]
    assert data["threshold"]["mqls_per_week"] is not None and data["date_column"] == "created_at"
    # the same AUC as scikit-learn on the scores `leadsync score` writes for the same rows
    scored = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "--input", str(labeled), "--output", str(scored)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(scored.open()))
    y = np.array([r["converted"].lower() == "yes" for r in rows])
    s = np.array([float(r["score"]) for r in rows])
    # `score` scores as of now, so decayed counters differ: compare on the evaluation's own now instead
    again = run_json("--input", str(scored), "--label", "converted")
    assert abs(again["auc"]["value"] - data["auc"]["value"]) < 1e-12
    assert roc_auc_score(y, s) > 0.5


def test_auc_matches_sklearn_on_the_evaluated_scores(labeled: Path) -> None:
    from datetime import datetime

    from leadsync.app import load_csv_scoring
    from leadsync.evaluate_cmd import load_labeled, run_evaluation

    _, rules, mapping = load_csv_scoring(None)
    data = load_labeled(labeled, "converted", rules, mapping, now=datetime.fromisoformat(AS_OF))
    run = run_evaluation(data, "f1", n_boot=100)
    assert abs(run.champion.auc.value - roc_auc_score(data.outcomes, data.champion.scores)) < 1e-9


def test_a_candidate_without_engagement_is_significantly_worse(labeled: Path, no_engagement: Path) -> None:
    data = run_json("--input", str(labeled), "--label", "converted", "--rules", str(no_engagement))
    comparison = data["comparison"]
    assert comparison["method"] == "DeLong" and comparison["significant"] and comparison["p_value"] < 0.01
    assert comparison["difference"] < 0 and data["candidate"]["auc"]["value"] < data["auc"]["value"]
    assert "significantly worse" in comparison["summary"]
    text = runner.invoke(app, ["evaluate", "--input", str(labeled), "--label", "converted", "--rules",
                               str(no_engagement), "--as-of", AS_OF])  # fmt: skip
    assert text.exit_code == 0 and "significantly worse" in text.stdout and "by score decile" in text.stdout


def _small(path: Path, labels: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "job_title", "won"])
        for i, label in enumerate(labels):
            writer.writerow([f"p{i}@acme-robotics.com", "VP Sales" if i % 3 else "Analyst", label])
    return path


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["1", "0", "maybe", "1"], "line 4: column 'won': expected 0/1, true/false or yes/no (empty = unlabeled), "
         "got 'maybe'"),
        (["0", "no", "FALSE", ""] * 20, "column 'won': all 60 labeled rows are 0/false/no (not converted)"),
        (["yes"] * 29 + ["no"] * 100, "column 'won': only 29 converted rows (1/true/yes); "
         "evaluation needs at least 30"),
    ],
)  # fmt: skip
def test_bad_labels_one_class_and_too_few_positives_exit_2(tmp_path: Path, labels: list[str], message: str) -> None:
    source = _small(tmp_path / "labels.csv", labels)
    for command in (["evaluate"], ["report", "--output", str(tmp_path / "r.html")]):
        result = runner.invoke(app, [*command, "--input", str(source), "--label", "won"])
        assert result.exit_code == 2, result.output
        assert str(source) in result.output and message in " ".join(result.output.split())
        assert "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()


def test_missing_label_column_and_bad_objective_exit_2(tmp_path: Path, labeled: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--input", str(labeled), "--label", "closed"])
    assert result.exit_code == 2 and "no column 'closed' for --label" in result.output
    result = runner.invoke(app, ["evaluate", "--input", str(labeled), "--label", "converted", "--objective", "max"])
    assert result.exit_code == 2 and "--objective: expected f1" in result.output


def test_capacity_without_dates_says_so(tmp_path: Path) -> None:
    source = _small(tmp_path / "undated.csv", (["yes"] * 40 + ["no"] * 60))
    data = run_json("--input", str(source), "--label", "won", "--objective", "capacity:10/week")
    assert data["recommendation"]["threshold"] is None and "needs the leads' dates" in data["recommendation"]["reason"]
    assert data["threshold"]["mqls_per_week"] is None and data["drift"] == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(labeled: Path, no_engagement: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium; a missing one fails in CI")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    output = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--input", str(labeled), "--label", "converted", "--rules",
                                 str(no_engagement), "--as-of", AS_OF, "--output", str(output)])  # fmt: skip
    assert result.exit_code == 0, result.output
    page_html = output.read_text()
    assert "<script" not in page_html and "<link" not in page_html  # no code, no external stylesheet
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(output.as_uri(), wait_until="load")
            charts = page.evaluate(
                """() => [...document.querySelectorAll('figure.chart')].map(f => {
                    const svg = f.querySelector('svg');
                    const marks = svg ? [...svg.querySelectorAll('[id*="mark-"]')] : [];
                    const drawn = marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
                    return {caption: f.querySelector('figcaption')?.textContent || '', marks: marks.length,
                            drawn: drawn.length, width: svg ? svg.getBoundingClientRect().width : 0};
                })"""
            )
            title = page.title()
            summary = page.inner_text(".summary")
            page.screenshot(path="/tmp/report.png", full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [output.as_uri()]  # nothing fetched but the file itself
    assert "Is the scoring working?" in title and "AUC" in summary and "significantly worse" in summary
    assert len(charts) == 8  # distribution, grade, decile, ROC, threshold, rules, drift, challenger
    empty = [c["caption"][:40] for c in charts if c["drawn"] == 0 or c["width"] < 200 or not c["caption"]]
    assert empty == []
