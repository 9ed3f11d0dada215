"""A realistic synthetic labeled lead file (shaped like a course-sales CRM export: a third converted).

Intake-time columns with the usual mess (placeholder "Select" values, mixed case, missing cells, an id and a
running number), a hidden logit behind the label, and two columns filled in by sales after the outcome
(``tags``, ``lead_quality``) that the leakage guard must catch. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ORIGINS = {"Landing Page Submission": 0.0, "API": -0.3, "Lead Add Form": 2.2, "Lead Import": -0.6}
SOURCES = {
    "Google": 0.0,
    "Direct Traffic": -0.2,
    "Olark Chat": -0.9,
    "Organic Search": -0.1,
    "Reference": 1.6,
    "Welingak Website": 2.5,
    "Referral Sites": -0.3,
    "Facebook": -0.6,
}
ACTIVITIES = {
    "Email Opened": 0.3,
    "SMS Sent": 1.4,
    "Olark Chat Conversation": -1.2,
    "Page Visited on Website": -0.3,
    "Converted to Lead": -1.0,
    "Email Bounced": -1.4,
    "Email Link Clicked": 0.0,
    "Form Submitted on Website": 0.2,
}
OCCUPATIONS = {"Unemployed": 0.0, "Working Professional": 2.3, "Student": -0.2, "Other": 0.4, "Housewife": 2.0}
SPECIALIZATIONS = [
    f"{s} Management" for s in ("Finance", "HR", "Marketing", "Operations", "IT Projects", "Supply Chain")
]
CITIES = ["Mumbai", "Thane & Outskirts", "Other Cities", "Other Cities of Maharashtra", "Tier II Cities"]
TAGS_YES = ["Will revert after reading the email", "Closed by Horizzon", "Lost to EINS"]
TAGS_NO = ["Ringing", "Interested in other courses", "Already a student", "switched off", "Not doing further education"]
INTAKE = [
    "prospect_id",
    "lead_number",
    "lead_origin",
    "lead_source",
    "do_not_email",
    "total_visits",
    "time_on_website",
    "pages_per_visit",
    "last_activity",
    "country",
    "specialization",
    "occupation",
    "city",
    "free_copy",
]
POST_SALE = ["tags", "lead_quality"]


def _pick(rng: np.random.Generator, options: dict[str, float] | list[str], p: list[float] | None = None) -> str:
    names = list(options)
    return str(names[rng.choice(len(names), p=p)])


def labeled_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows with ``converted`` (1/0), the intake columns and the post-sale columns."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        z = rng.normal()
        origin = _pick(rng, ORIGINS, [0.53, 0.39, 0.075, 0.005])
        source = _pick(rng, SOURCES, [0.31, 0.28, 0.19, 0.12, 0.04, 0.015, 0.015, 0.03])
        if origin == "Lead Add Form" and rng.random() < 0.6:
            source = "Reference"
        occupation = _pick(rng, OCCUPATIONS, [0.82, 0.1, 0.05, 0.02, 0.01]) if rng.random() > 0.29 else ""
        activity = _pick(rng, ACTIVITIES, [0.37, 0.3, 0.11, 0.07, 0.07, 0.04, 0.03, 0.01])
        visits = int(rng.poisson(math.exp(0.3 * z + 1.0))) if origin not in ("Lead Add Form", "Lead Import") else 0
        engaged = rng.random() < 0.75 and visits > 0
        time_on = float(round(math.exp(5.4 + 0.6 * z + rng.normal(0, 0.8)))) if engaged else 0.0
        dne = "Yes" if rng.random() < 0.08 else "No"
        logit = (
            -1.35
            + 0.45 * z
            + ORIGINS[origin]
            + SOURCES[source]
            + OCCUPATIONS.get(occupation, -0.4)
            + ACTIVITIES[activity]
            + (1.1 * math.log1p(time_on) - 5.0 if time_on > 0 else 0.0) * 0.9
            - (0.9 if dne == "Yes" else 0.0)
        )
        converted = rng.random() < 1 / (1 + math.exp(-logit))
        tagged = rng.random() < 0.64
        if tagged:
            correct = rng.random() < 0.97
            tags = _pick(rng, TAGS_YES if converted == correct else TAGS_NO)
        else:
            tags = ""
        quality = ""
        if rng.random() < 0.5:
            quality = (
                "High in Relevance" if converted and rng.random() < 0.6 else "Might be" if converted else "Not Sure"
            )
        rows.append(
            {
                "prospect_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)) * 2 + i)),
                "lead_number": 660_000 - i * 3,
                "lead_origin": origin,
                "lead_source": source.lower() if source == "Google" and rng.random() < 0.01 else source,
                "do_not_email": dne,
                "total_visits": "" if rng.random() < 0.015 else visits,
                "time_on_website": int(time_on),
                "pages_per_visit": round(visits and (1 + rng.gamma(2.0, 0.8)), 2),
                "last_activity": activity,
                "country": "India" if rng.random() < 0.7 else "" if rng.random() < 0.8 else "United States",
                "specialization": "Select"
                if rng.random() < 0.21
                else _pick(rng, SPECIALIZATIONS)
                if rng.random() < 0.8
                else "",
                "occupation": occupation,
                "city": "Select" if rng.random() < 0.24 else _pick(rng, CITIES) if rng.random() < 0.8 else "",
                "free_copy": "Yes" if rng.random() < 0.31 else "No",
                "tags": tags,
                "lead_quality": quality,
                "converted": int(converted),
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
