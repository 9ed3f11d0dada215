"""Scoring with a model: likelihood on the Score, rules conditioned on it, the CRM properties it writes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from scoring import Lead, compile_rules, load_rules
from scoring.predictive import FeatureTable, LeadFeatures, TrainOptions, train_model
from sync.predict import ModelScorer, uses_likelihood
from sync.writeback import WritebackSettings, desired_properties

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def leads(n: int, seed: int = 0) -> tuple[list[Lead], np.ndarray]:
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 5000, n)
    industry = rng.choice(["software", "retail", "banking"], n)
    y = rng.random(n) < 1 / (1 + np.exp(-(np.log(size) - 5.5 + (industry == "software") * 1.5)))
    out = [
        Lead(f"l{i}", email=f"p{i}@co{i}.com", employees=int(s), industry=str(ind), lifecycle_stage="customer")
        for i, (s, ind) in enumerate(zip(size, industry, strict=True))
    ]
    return out, y


def test_rules_can_qualify_on_the_likelihood_and_properties_follow() -> None:
    rules = compile_rules(load_rules({"fit": [{"name": "likely", "points": 40, "when": {"likelihood": {"gte": 60}}}]}))
    assert uses_likelihood(rules)
    train, y = leads(800)
    features = LeadFeatures(rules)
    table = FeatureTable.from_rows([features.row(lead, [], NOW) for lead in train])
    result = train_model(table, y, options=TrainOptions(search=False))
    assert "lifecycle_stage" not in table.columns and "rule:likely" in result.card["dropped"]  # never fires in training
    scorer = ModelScorer(result.model, "abc123", rules)
    new, _ = leads(200, seed=1)
    plain = rules.score_many(((lead, [], None) for lead in new), NOW)
    scored, reasons = scorer.apply(new, {}, plain, NOW)
    likely = [s for s in scored if s.likelihood is not None and s.likelihood * 100 >= 60]
    assert likely and all(any(h.rule == "likely" for h in s.hits) for s in likely)
    assert all(not any(h.rule == "likely" for h in s.hits) for s in scored if s.likelihood * 100 < 59.5)
    assert all(s.model_version == "abc123" and s.priority_tier is not None for s in scored)
    props = desired_properties(scored[0], new[0], WritebackSettings(model_properties=True), reasons[0])
    assert props["leadsync_likelihood"] == str(round(scored[0].likelihood * 100))
    assert props["leadsync_priority"] == scored[0].priority_tier and props["leadsync_model_version"] == "abc123"
    assert props["leadsync_likelihood_reasons"] == reasons[0] and reasons[0]
    salesforce = WritebackSettings(style="salesforce", model_properties=True)
    names = {spec.name for spec in salesforce.property_specs()}
    assert {"Leadsync_Likelihood__c", "Leadsync_Priority__c", "Leadsync_Model_Version__c"} <= names
    assert "leadsync_likelihood" not in desired_properties(plain[0], new[0], WritebackSettings())
    assert "leadsync_likelihood" not in {s.name for s in WritebackSettings().property_specs()}


def test_the_bulk_path_equals_the_estimator_and_the_plain_encoding() -> None:
    """The binned tree walk gives the estimator's own log-odds, unknown codes and missing cells included; the
    distinct-value encoding reads mixed cells as one cell at a time would."""
    from scoring.predictive.features import FeatureSpec, encode

    rng = np.random.default_rng(3)
    n = 3000
    kind = rng.choice(["a", "b", "c", "d"], n)
    size = rng.lognormal(3, 1, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(np.log(size) - 3 + (kind == "a") * 1.5)))
    table = FeatureTable({"kind": kind.tolist(), "size": size.tolist(), "flag": (rng.random(n) < 0.5).tolist()}, n)
    model = train_model(table, y, options=TrainOptions(search=False)).model
    x = model.matrix(table)
    cat = [j for j, s in enumerate(model.specs) if s.kind == "categorical"]
    x[rng.random(n) < 0.1, cat[0]] = 17.0  # a code the trees never saw
    x[rng.random(n) < 0.1, 1] = np.nan
    assert np.array_equal(model.raw(x), model.estimator.decision_function(x))
    mixed = ["yes", 1, True, None, "", " 2.5 ", "n/a", 0, "x", float("nan")]
    number = FeatureSpec("v", "numeric")
    assert np.array_equal(
        encode([number], FeatureTable({"v": mixed}, len(mixed)))[:, 0],
        [1, 1, 1, np.nan, np.nan, 2.5, np.nan, 0, np.nan, np.nan],
        equal_nan=True,
    )
    category = FeatureSpec("v", "categorical", ("1", "true", "yes"), other=True)
    codes = encode([category], FeatureTable({"v": ["Yes", True, 1, "zz", None, 1.0]}, 6))[:, 0]
    assert np.array_equal(codes, [2, 1, 0, 3, np.nan, 3], equal_nan=True)  # True and 1 stay apart, 1.0 is "1.0"
