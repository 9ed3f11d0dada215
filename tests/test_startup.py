"""Start-up (issue 21): ``leadsync --help`` and ``leadsync explain`` load no heavy library they do not use.

Structural, not timed (``benchmarks/startup.py`` prints the times): each command runs in a fresh interpreter
through the CLI's entry point, which writes the names in ``sys.modules`` at exit to a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync.state import CachedLead, StateStore
from sync.state.store import HEAD_REVISION

ROOT = Path(__file__).resolve().parent.parent
#: libraries neither command uses: machine learning, data frames, the migration tool, the CRM SDKs, the
#: scheduler, plotting, and the PostgreSQL dialect (the store here is SQLite). numpy is not among them:
#: `explain` scores the lead with the rules engine, which computes with it.
NEVER = (
    "sklearn",
    "scipy",
    "skops",
    "pandas",
    "pyarrow",
    "matplotlib",
    "alembic",
    "hubspot",
    "simple_salesforce",
    "jwt",
    "apscheduler",
    "sqlalchemy.dialects.postgresql",
    "rich.progress",
)
#: and what `--help` does not need either: the config's, the store's and the scoring engine's libraries
NOT_FOR_HELP = ("numpy", "sqlalchemy", "pydantic", "yaml", "structlog", "requests", "scoring", "sync.state")

_RUN = """
import atexit, json, sys
listing = sys.argv[1]
atexit.register(lambda: open(listing, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["leadsync", *sys.argv[2:]]
from leadsync.cli import main
main()
"""


def loaded_by(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``leadsync ARGS`` in a fresh interpreter; its result and the modules it had loaded at exit."""
    listing = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSYNC_")}
    result = subprocess.run(
        [sys.executable, "-c", _RUN, str(listing), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    return result, set(json.loads(listing.read_text()))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages and their submodules) were loaded."""
    return sorted(name for name in names if any(m == name or m.startswith(name + ".") for m in modules))


def test_help_imports_only_the_command_line(tmp_path: Path) -> None:
    result, modules = loaded_by(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "explain" in result.stdout and "model" in result.stdout  # every command and group is listed
    assert loaded(modules, (*NEVER, *NOT_FOR_HELP)) == []


@pytest.fixture
def cached_lead(tmp_path: Path) -> Path:
    """A config whose SQLite store (migrated to the head) holds one lead."""
    state = tmp_path / "state.db"
    store = StateStore.open(f"sqlite:///{state}")
    try:
        lead = {"email": "Ada@Acme.example", "jobtitle": "VP Marketing", "hs_analytics_num_page_views": "12"}
        store.upsert_leads([CachedLead("101", "contact", "Ada@Acme.example", lead, [], datetime.now(UTC))])
    finally:
        store.close()
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        "crm: hubspot\nhubspot: {access_token: pat-startup-test, base_url: 'http://127.0.0.1:9'}\n"
        f"state: {{url: 'sqlite:///{state}'}}\n",
        encoding="utf-8",
    )
    return config


def test_explain_reads_the_cache_without_ml_migrations_or_crm_clients(tmp_path: Path, cached_lead: Path) -> None:
    result, modules = loaded_by(tmp_path, "explain", "ada@acme.example", "--config", str(cached_lead), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["id"] == "101" and answer["model"] is None
    assert loaded(modules, NEVER) == []
    assert {"sqlalchemy", "scoring"} <= modules  # it did read the store and score the lead


def test_a_usage_mistake_is_told_before_the_command_imports_its_work(tmp_path: Path) -> None:
    result, modules = loaded_by(tmp_path, "rules", "fit")
    assert result.returncode == 2 and "give either --input CSV --label COL or --from-history" in result.stderr
    assert loaded(modules, (*NEVER, "numpy", "sqlalchemy", "scoring")) == []


def test_the_head_revision_known_without_alembic_is_the_migrations_head() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(StateStore._alembic_config()).get_current_head() == HEAD_REVISION


def test_open_reads_the_revision_and_migrates_only_a_store_behind_it(sqlite_url: str) -> None:
    from sqlalchemy import text

    store = StateStore.open(sqlite_url)  # empty: migrated
    try:
        assert store.schema_revision() == HEAD_REVISION
        with store.engine.begin() as conn:  # an older release's marker: open must run alembic again
            conn.execute(text("UPDATE alembic_version SET version_num = '0005_models'"))
            conn.execute(text("ALTER TABLE scores DROP COLUMN points"))  # what 0004_score_points adds
            conn.execute(text("ALTER TABLE leases DROP COLUMN epoch"))  # and 0006_lease_epoch
            conn.execute(text("DROP TABLE lead_companies"))  # and 0008_companies
            conn.execute(text("DROP TABLE companies"))
    finally:
        store.close()
    reopened = StateStore.open(sqlite_url)
    try:
        assert reopened.schema_revision() == HEAD_REVISION
        with reopened.engine.connect() as conn:
            assert "points" in {row[1] for row in conn.execute(text("PRAGMA table_info(scores)"))}
    finally:
        reopened.close()
