"""A marketing-automation export as analysts get it (issue 17): no email column, spaces and punctuation in
column names, `Select` where a form field was left blank, `NA` in number columns, mixed-case values."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from typer.testing import CliRunner

from leadsync.cli import app

COLUMNS = [
    "Prospect ID",
    "Lead Origin",
    "Lead Source",
    "Do Not Email",
    "Converted",
    "TotalVisits",
    "Total Time Spent on Website",
    "Page Views Per Visit",
    "Last Activity",
    "What is your current occupation",
    "City",
]
ORIGINS = ["Landing Page Submission", "API", "Lead Add Form", "Lead Import"]
SOURCES = ["Google", "google", "Direct Traffic", "Olark Chat", "Organic Search", "Reference"]
ACTIVITIES = ["Email Opened", "SMS Sent", "Page Visited on Website", "Converted to Lead"]
OCCUPATIONS = ["Unemployed", "Working Professional", "Student", "Select", ""]
CITIES = ["Mumbai", "Thane & Outskirts", "Select", "Other Cities"]

runner = CliRunner()


def rows(count: int = 200, seed: int = 17) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        visits = rng.choice(["0", "2", "5", "9", "14", "NA", ""])
        out.append(
            {
                "Prospect ID": f"7927b2df-8bba-4d29-b9a2-{i:012d}",
                "Lead Origin": rng.choice(ORIGINS),
                "Lead Source": rng.choice(SOURCES),
                "Do Not Email": rng.choice(["No", "No", "Yes"]),
                "Converted": rng.choice(["0", "0", "1"]),
                "TotalVisits": visits,
                "Total Time Spent on Website": str(rng.randrange(0, 2200)),
                "Page Views Per Visit": rng.choice(["1", "2.5", "3", "NA"]),
                "Last Activity": rng.choice(ACTIVITIES),
                "What is your current occupation": rng.choice(OCCUPATIONS),
                "City": rng.choice(CITIES),
            }
        )
    return out


def write(path: Path, data: list[dict[str, str]], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(data[0]), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    path.write_text(buffer.getvalue(), encoding=encoding)
    return path


def read(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output
