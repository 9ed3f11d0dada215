"""The fault matrix, quick: every scenario on both CRMs, each compared with a fault-free run, must show zeros.

Runs ``benchmarks/fault_matrix.py --quick --crm both`` as a black box (the figures it prints are the ones
the README quotes, from the full run) and reads its rows back as JSON. Marked slow: ``make soak`` runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.daemon._harness import REPO

SCENARIOS = {"faults", "sigkill", "pg-restart", "replicas"}
CRMS = {"hubspot", "salesforce"}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(3600)
def test_the_quick_fault_matrix_loses_nothing_and_fires_nothing_twice(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/fault_matrix.py", "--quick", "--crm", "both", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3500,
    )
    print(done.stdout[-6000:])
    rows: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else []
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    assert {(r["scenario"], r["crm"]) for r in rows} == {(s, c) for s in SCENARIOS for c in CRMS}

    for row in rows:
        where = f"{row['scenario']} on {row['crm']}: {row}"
        assert row["error"] is None, where
        assert row["records"] > 0 and row["faults"] > 0, where  # the scenario compared records and hurt them
        assert row["triggers"] > 0, where  # workflows fired, so duplicates could show
        assert row["mismatches"] == 0, where
        assert row["duplicate_triggers"] == 0, where
        assert row["lost_writes"] == 0, where
        assert row["repeated_writes"] == 0, where
        assert row["overlapping_passes"] == 0, where
        assert not [n for n in row["notes"] if "exit codes" in n or "left in the store" in n or "secret" in n], where
        if row["scenario"] in ("sigkill", "replicas"):
            assert row["takeovers"] == row["kills"] > 0, where
        if row["scenario"] == "sigkill":
            assert row["kill_points"].get("delivery", 0) > 0, where  # the CRM had the trigger, the daemon died
