"""The shadow challenger over real HTTP: both rule sets score every lead each pass, only the champion is
written (or the challenger, for the stable hashed share of ``challenger.split``), both go to the history."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.config import ConfigError, parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from tests.sync.test_hubspot_sync import all_contacts, make_pipeline

N = 150


@pytest.fixture
def portal(hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer]) -> HubSpotSandboxServer:
    return hubspot_sandbox_factory(contacts=N, seed=5, now=None)


@pytest.fixture
def rules_b(tmp_path: Path) -> Path:
    """A challenger that ignores engagement: its scores differ from the defaults for engaged leads."""
    path = tmp_path / "rules-b.yaml"
    path.write_text("engagement: []\n")
    return path


def crm_scores(portal: HubSpotSandboxServer) -> dict[str, int]:
    return {i: int(row["leadsync_score"]) for i, row in all_contacts(portal, ["leadsync_score"]).items()}


def last_totals(store: StateStore, ids: list[str], arm: str) -> dict[str, int]:
    return {i: r.total for i, r in store.last_history(ids, arm).items()}


def hashed_share(ids: list[str], split: float) -> set[str]:
    """The test's own reading of the split: the first 8 bytes of SHA-256 of the id, as a fraction of 2**64."""
    return {i for i in ids if int(hashlib.sha256(i.encode()).hexdigest()[:16], 16) < split * 2**64}


def challenger_pipeline(
    portal: HubSpotSandboxServer, url: str, rules: Path, **extra: Any
) -> tuple[SyncPipeline, StateStore]:
    return make_pipeline(portal, url, challenger={"rules": str(rules), **extra})


def test_only_the_champion_is_written_and_the_challenger_goes_to_the_history(
    portal: HubSpotSandboxServer, store_url: str, rules_b: Path
) -> None:
    pipeline, store = challenger_pipeline(portal, store_url, rules_b)
    try:
        first = pipeline.run_once()
        assert first.challenger_scored == first.leads_scored == N and first.challenger_written == 0
        ids = sorted(crm_scores(portal))
        champion, challenger = last_totals(store, ids, "champion"), last_totals(store, ids, "challenger")
        assert len(champion) == len(challenger) == N
        assert crm_scores(portal) == champion
        assert sum(champion[i] != challenger[i] for i in ids) > N // 10  # the two rule sets really differ
        rows = [r for page in store.iter_history(arm="challenger") for r in page]
        assert {r.rules_version for r in rows} == {pipeline.challenger.version} != {pipeline.rules.version}
        second = pipeline.run_once(full=True)  # nothing changed: no new history in either arm, nothing written
        assert second.challenger_scored == N and second.leads_written == 0
        assert store.count_history("challenger") == store.count_history("champion") == N
    finally:
        store.close()


@pytest.mark.parametrize("split", [0.3])
def test_split_writes_the_challenger_for_the_same_hashed_share_every_pass(
    portal: HubSpotSandboxServer, store_url: str, rules_b: Path, split: float
) -> None:
    pipeline, store = challenger_pipeline(portal, store_url, rules_b, split=split)
    try:
        first = pipeline.run_once()
        crm = crm_scores(portal)
        ids = sorted(crm)
        share = hashed_share(ids, split)
        assert 0.15 * N < len(share) < 0.45 * N
        assert first.challenger_written == len(share) and first.leads_written == N
        champion, challenger = last_totals(store, ids, "champion"), last_totals(store, ids, "challenger")
        assert {i: crm[i] for i in share} == {i: challenger[i] for i in share}
        assert {i: crm[i] for i in ids if i not in share} == {i: champion[i] for i in ids if i not in share}
        assert any(champion[i] != challenger[i] for i in share)  # the split is visible in the CRM
        # the stored current score is the written one (explain, triggers and the next diff follow the CRM)
        assert {i: s.total for i, s in store.get_scores(ids).items()} == crm
    finally:
        store.close()
    # another process (a restart, a replica): the same leads keep their arm, nothing flaps or is rewritten
    again, store = challenger_pipeline(portal, store_url, rules_b, split=split)
    try:
        second = again.run_once(full=True)
        assert second.leads_written == 0 and second.challenger_written == 0
        assert crm_scores(portal) == crm
        assert store.count_history("challenger") == store.count_history("champion") == N
    finally:
        store.close()


def test_challenger_config_mistakes_name_the_key(tmp_path: Path, rules_b: Path) -> None:
    base: dict[str, Any] = {"crm": "hubspot", "hubspot": {"access_token": "pat-x"}}
    with pytest.raises(ConfigError, match=r"challenger\.rules.*is not a file"):
        build_app(parse_config(base | {"challenger": {"rules": str(tmp_path / "nope.yaml")}}))
    with pytest.raises(ConfigError, match=r"challenger\.split"):
        parse_config(base | {"challenger": {"rules": str(rules_b), "split": 1.5}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("mql_thresholdd: 60\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        build_app(parse_config(base | {"challenger": {"rules": str(bad)}}))
    # a relative path is read from the config file's directory, wherever the command runs
    config = tmp_path / "leadsync.yaml"
    config.write_text("crm: hubspot\nhubspot: {access_token: pat-x}\nchallenger: {rules: rules-b.yaml}\n")
    from leadsync.config import load_config

    app = build_app(load_config(config))
    assert app.challenger is not None and app.challenger.version != app.rules.version
