"""A mapping change is a rules-version change: the next pass rescores every cached lead from the cache."""

from __future__ import annotations

from collections.abc import Callable

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.config import parse_config
from tests.sync.test_company_fields import sandbox_stats, spent

ASSOCIATIONS = "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read"
READS = ("GET /crm/v3/objects/contacts", "POST /crm/v3/objects/contacts/batch/read", ASSOCIATIONS)


def test_a_mapping_change_rescores_the_cache_without_reading_the_leads(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=250, seed=45, now=None)

    def pipeline(mapping: dict[str, object] | None) -> object:
        config = {
            "crm": "hubspot",
            "hubspot": {"access_token": server.token, "base_url": server.url, "rate_limit_per_10s": 5000},
            "state": {"url": store_url},
            "sync": {"settle_s": 0},
        }
        app = build_app(parse_config(config | ({"mapping": mapping} if mapping else {})))
        pipe = app.pipeline(app.store())
        pipe.recheck_per_pass = 0
        return pipe

    first = pipeline(None)
    first.run_once()  # type: ignore[attr-defined]
    first.run_once()  # type: ignore[attr-defined]
    targeted = sum(
        any(h["rule"] == "target_industry" for h in s.hits)
        for s in first.store.get_scores(server.portal.contact_ids()).values()  # type: ignore[attr-defined]
    )
    first.store.close()  # type: ignore[attr-defined]
    # every industry counts as a target one now: a transform, no new field
    changed = pipeline(
        {
            "fields": {
                "industry": {
                    "property": "industry",
                    "company": "company.industry",
                    "map": {},
                    "other": "software",
                    "default": "software",
                }
            }
        }
    )
    assert changed.rules.version != first.rules.version  # type: ignore[attr-defined]
    before = sandbox_stats(server)
    summary = changed.run_once()  # type: ignore[attr-defined]
    after = sandbox_stats(server)
    cached = changed.store.count_leads()  # type: ignore[attr-defined]
    scores = changed.store.get_scores(server.portal.contact_ids())  # type: ignore[attr-defined]
    changed.store.close()  # type: ignore[attr-defined]
    assert summary.leads_rescored == cached == 250
    assert all(s.rules_version == changed.rules.version for s in scores.values())  # type: ignore[attr-defined]
    assert sum(any(h["rule"] == "target_industry" for h in s.hits) for s in scores.values()) > targeted
    assert all(spent(before, after, endpoint) == 0 for endpoint in READS)  # no lead or activity read
