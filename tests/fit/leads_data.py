"""A realistic labeled lead export for the fit tests and the benchmark, seeded and deterministic.

Shaped like a course seller's CRM export (the public "X Education" kind): ~30 intake-time columns of
categories with rare values, case variants (``google`` beside ``Google``) and a ``Select`` placeholder,
numbers with zeros and blanks, two id columns, a free-text column, a date, and the post-sale columns
(``Tags``, ``Lead Quality``) that are filled in by sales after the outcome and leak it. A hidden intent
drives several columns at once (so they correlate) and the outcome through a non-additive log-odds (so
that a tree model has something a scorecard cannot quite express).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scoring.fit import Feature, categorical_feature, numeric_feature

LABEL = "Converted"
POST_SALE = ("Tags", "Lead Quality")
IDS = ("Prospect ID", "Lead Number", "email")


def _pick(rng: np.random.Generator, values: Sequence[str], probs: Sequence[float], n: int) -> npt.NDArray[np.str_]:
    p = np.asarray(probs, dtype=np.float64)
    return np.asarray(values)[rng.choice(len(values), size=n, p=p / p.sum())]


def _effect(column: npt.NDArray[np.str_], effects: dict[str, float]) -> npt.NDArray[np.float64]:
    return np.array([effects.get(v, 0.0) for v in column])


def generate(n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Header and rows (text cells, blank = missing) of ``n`` leads."""
    rng = np.random.default_rng(seed)
    intent = rng.normal(size=n)
    cols: dict[str, npt.NDArray[np.str_]] = {}
    logit = np.full(n, -0.9) + 0.9 * intent

    cols["Prospect ID"] = np.array([f"{a:016x}" for a in rng.integers(0, 2**62, size=n)])
    cols["Lead Number"] = np.array([str(660_000 - i) for i in range(n)])
    cols["email"] = np.array([f"lead{i}@example{i % 97}.com" for i in range(n)])
    origin = np.where(
        intent + rng.normal(scale=1.2, size=n) > 2.2,
        "Lead Add Form",
        _pick(rng, ["Landing Page Submission", "API", "Lead Import"], [0.56, 0.42, 0.02], n),
    )
    cols["Lead Origin"] = origin
    logit += _effect(origin, {"Lead Add Form": 2.2, "API": -0.25, "Lead Import": -0.9})
    sources = ["Google", "Direct Traffic", "Olark Chat", "Organic Search", "Reference", "Welingak Website"]
    sources += ["Referral Sites", "Facebook", "bing", "Click2call", "Live Chat", "Social Media", "google", ""]
    source = _pick(rng, sources, [31, 28, 19, 12, 4, 1.5, 1.3, 0.6, 0.1, 0.05, 0.03, 0.03, 0.05, 0.4], n)
    source = np.where((origin == "Lead Add Form") & (rng.random(n) < 0.7), "Reference", source)
    cols["Lead Source"] = source
    logit += _effect(source, {"Reference": 0.9, "Welingak Website": 2.5, "Olark Chat": -0.5, "Direct Traffic": -0.2})
    do_not_email = np.where(rng.random(n) < 0.08 + 0.04 * (intent < -1), "Yes", "No")
    cols["Do Not Email"] = do_not_email
    logit += _effect(do_not_email, {"Yes": -1.1})
    cols["Do Not Call"] = np.where(rng.random(n) < 0.001, "Yes", "No")
    web = (origin != "Lead Add Form") & (source != "Olark Chat")
    visits = np.where(web, rng.poisson(np.exp(1.0 + 0.25 * intent).clip(0.1)), rng.poisson(0.2, n))
    time_on_site = np.where(
        web & (rng.random(n) < 0.9),
        np.exp(5.6 + 0.7 * intent + rng.normal(scale=0.8, size=n)).round(),
        0,
    )
    logit += 1.3 * np.tanh((time_on_site - 500) / 500) + 0.6 * (time_on_site > 1200)
    views = np.where(visits > 0, np.round(visits / np.maximum(1, rng.poisson(1.2, n)) + rng.random(n), 2), 0)
    gone = rng.random(n) < 0.015
    cols["TotalVisits"] = np.where(gone, "", visits.astype(str))
    cols["Total Time Spent on Website"] = time_on_site.astype(np.int64).astype(str)
    cols["Page Views Per Visit"] = np.where(gone, "", views.astype(str))
    logit += np.where(visits > 12, -0.4, 0.0)
    activities = ["Email Opened", "SMS Sent", "Olark Chat Conversation", "Page Visited on Website"]
    activities += ["Converted to Lead", "Email Bounced", "Email Link Clicked", "Form Submitted on Website"]
    activities += ["Unreachable", "Unsubscribed", "Had a Phone Conversation", ""]
    activity = _pick(rng, activities, [37, 20, 10, 7, 5, 3.5, 3, 1.3, 1, 0.7, 0.3, 1.1], n)
    activity = np.where((intent + rng.normal(size=n) > 1.0) & (rng.random(n) < 0.5), "SMS Sent", activity)
    activity = np.where(
        source == "Olark Chat", np.where(rng.random(n) < 0.5, "Olark Chat Conversation", activity), activity
    )
    cols["Last Activity"] = activity
    logit += _effect(
        activity,
        {"SMS Sent": 1.2, "Email Opened": 0.3, "Olark Chat Conversation": -1.0, "Converted to Lead": -0.8},
    )
    logit += _effect(activity, {"Email Bounced": -1.2, "Had a Phone Conversation": 2.0, "Unreachable": -0.4})
    countries = ["India", "", "United States", "United Arab Emirates", "Singapore", "Saudi Arabia"]
    countries += ["United Kingdom", "Australia", "Qatar", "Hong Kong", "Bahrain", "Oman", "France", "unknown"]
    cols["Country"] = _pick(
        rng, countries, [70, 26, 0.8, 0.6, 0.3, 0.2, 0.2, 0.15, 0.1, 0.08, 0.07, 0.07, 0.06, 0.05], n
    )
    specs = ["Select", "", "Finance Management", "Human Resource Management", "Marketing Management"]
    specs += ["Operations Management", "Business Administration", "IT Projects Management", "Supply Chain Management"]
    specs += ["Banking, Investment And Insurance", "Travel and Tourism", "Media and Advertising", "E-Business"]
    spec = _pick(rng, specs, [21, 16, 10.5, 9, 9, 5.5, 4.3, 4, 3.8, 3.7, 2.2, 2.2, 0.6], n)
    spec = np.where(web, spec, np.where(rng.random(n) < 0.6, "Select", spec))
    cols["Specialization"] = spec
    logit += _effect(
        spec, {"Select": -0.5, "": -0.3, "Finance Management": 0.2, "Banking, Investment And Insurance": 0.3}
    )
    hear = _pick(
        rng, ["Select", "", "Online Search", "Word Of Mouth", "Student of SomeSchool", "Other"], [55, 24, 9, 4, 3, 5], n
    )
    cols["How did you hear about X Education"] = hear
    occupation_p = 1 / (1 + np.exp(-(intent - 1.8) * 1.5))
    occupation = np.where(
        rng.random(n) < occupation_p,
        "Working Professional",
        _pick(rng, ["Unemployed", "", "Student", "Other", "Housewife", "Businessman"], [61, 29, 2.3, 0.2, 0.1, 0.1], n),
    )
    cols["What is your current occupation"] = occupation
    logit += _effect(occupation, {"Working Professional": 2.0, "": -0.8, "Student": -0.3, "Housewife": 2.5})
    cols["What matters most to you in choosing a course"] = np.where(
        occupation == "", np.where(rng.random(n) < 0.9, "", "Better Career Prospects"), "Better Career Prospects"
    )
    for name, share in (("Search", 0.0015), ("Newspaper Article", 0.0003), ("X Education Forums", 0.0001)):
        cols[name] = np.where(rng.random(n) < share, "Yes", "No")
    cols["Magazine"] = np.full(n, "No")
    cols["Through Recommendations"] = np.where(rng.random(n) < 0.001, "Yes", "No")
    cols["Receive More Updates About Our Courses"] = np.full(n, "No")
    cities = [
        "Mumbai",
        "Select",
        "",
        "Thane & Outskirts",
        "Other Cities",
        "Other Cities of Maharashtra",
        "Other Metro Cities",
        "Tier II Cities",
    ]
    cols["City"] = _pick(rng, cities, [35, 24, 15, 8, 7.4, 5, 4, 0.8], n)
    profile = _pick(
        rng,
        ["Select", "", "Other Leads", "Student of SomeSchool", "Lateral Student", "Dual Specialization Student"],
        [45, 29, 5.3, 2.6, 0.2, 0.2],
        n,
    )
    profile = np.where((intent + rng.normal(size=n) > 1.3) & (rng.random(n) < 0.6), "Potential Lead", profile)
    cols["Lead Profile"] = profile
    logit += _effect(profile, {"Potential Lead": 1.2, "Student of SomeSchool": -2.0, "Lateral Student": 2.0})
    index_missing = rng.random(n) < 0.45
    for name, centre in (("Asymmetrique Activity Score", 14.0), ("Asymmetrique Profile Score", 16.0)):
        score = np.round(centre + 0.8 * intent + rng.normal(scale=1.5, size=n)).astype(np.int64)
        cols[name] = np.where(index_missing, "", score.astype(str))
    cols["Asymmetrique Activity Index"] = np.where(
        index_missing, "", np.where(intent > 0.5, "01.High", np.where(intent > -0.8, "02.Medium", "03.Low"))
    )
    cols["A free copy of Mastering The Interview"] = np.where(rng.random(n) < 0.31, "Yes", "No")
    cols["Notes"] = np.array(
        [
            f"called {d} times; follow up {w}"
            for d, w in zip(rng.integers(0, 40, n), rng.integers(1, 999, n), strict=True)
        ]
    )
    days = rng.integers(0, 365, n)
    cols["Created"] = np.array([str(np.datetime64("2024-01-01") + int(d)) + "T09:00:00Z" for d in days])
    # interactions a sum of per-column points cannot represent exactly
    logit += 0.8 * ((occupation == "Working Professional") & (time_on_site > 800)) - 0.5 * (
        (origin == "API") & (activity == "Email Opened")
    )
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    cols[LABEL] = converted.astype(np.int64).astype(str)
    won = ["Will revert after reading the email", "Closed by Horizzon", "Lost to EINS", "Busy"]
    lost = [
        "Ringing",
        "Interested in other courses",
        "Already a student",
        "switched off",
        "Not doing further education",
        "",
    ]
    cols["Tags"] = np.where(
        converted,
        _pick(rng, won, [70, 15, 6, 2], n),
        _pick(rng, lost, [25, 10, 8, 5, 3, 49], n),
    )
    slip = rng.random(n) < 0.01  # a few mistagged: separates almost, not perfectly
    cols["Tags"] = np.where(
        slip, _pick(rng, ["Ringing", "Will revert after reading the email"], [1, 1], n), cols["Tags"]
    )
    cols["Lead Quality"] = np.where(
        converted,
        _pick(rng, ["High in Relevance", "Might be", "", "Not Sure"], [25, 30, 35, 10], n),
        _pick(rng, ["Worst", "Low in Relevance", "", "Not Sure", "Might be"], [10, 10, 55, 15, 10], n),
    )
    header = list(cols)
    rows = [list(r) for r in zip(*(cols[c].tolist() for c in header), strict=True)]
    return header, rows


def write(path: Path, header: list[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def split(
    rows: Sequence[Sequence[str]], share: float = 0.7, seed: int = 1
) -> tuple[list[Sequence[str]], list[Sequence[str]]]:
    """A seeded 70/30 split of the rows."""
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(len(rows) * share)
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]


def without(header: list[str], rows: Sequence[Sequence[str]], drop: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    keep = [i for i, c in enumerate(header) if c not in drop]
    return [header[i] for i in keep], [[r[i] for i in keep] for r in rows]


def features(header: list[str], rows: Sequence[Sequence[str]], drop: Sequence[str] = ()) -> list[Feature]:
    """The pure fit's input for the tests that skip the CLI: a column of numbers is numeric, else text."""
    out = []
    for j, column in enumerate(header):
        if column == LABEL or column in drop:
            continue
        values = [r[j] for r in rows]
        try:
            out.append(numeric_feature(column, [float(v) if v else None for v in values]))
        except ValueError:
            out.append(categorical_feature(column, values))
    return out


def outcomes(header: list[str], rows: Sequence[Sequence[str]]) -> npt.NDArray[np.bool_]:
    j = header.index(LABEL)
    return np.array([r[j] == "1" for r in rows])
