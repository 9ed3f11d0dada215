"""Company fields end to end over real HTTP: a fit rule on ``company.industry`` scores contacts whose own record
has no industry (HubSpot's primary company, Salesforce's Account), and a company edited in the sandbox
rescores its contacts on the next incremental pass at a cost the sandbox's ``/__sandbox/stats`` counts."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from hubspot.crm.companies import SimplePublicObjectInput

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer
from leadsync.app import build_app
from leadsync.config import parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from tests.sync.test_hubspot_sync import all_contacts
from tests.sync.test_salesforce_sync import rows, sf_config

#: an industry no synthetic company has: only the companies a test gives it match
NICHE = "Quantum Agriculture"
RULE = {"name": "niche_company", "label": "niche company", "points": 30, "when": {"company.industry": {"in": [NICHE]}}}
COMPANY_SEARCH = "POST /crm/v3/objects/companies/search"
COMPANY_READ = "POST /crm/v3/objects/companies/batch/read"
COMPANY_ASSOCIATIONS = "POST /crm/v4/associations/contacts/companies/batch/read"
CONTACT_SEARCH = "POST /crm/v3/objects/contacts/search"
#: the company attributes the Salesforce default mapping reads from a Contact's Account
ACCOUNT = ("name", "industry", "employees", "revenue", "country")


def sandbox_stats(server: Any) -> dict[str, int]:
    """What the sandbox counted, over HTTP (``GET /__sandbox/stats``)."""
    response = requests.get(f"{server.url}/__sandbox/stats", timeout=10, verify=getattr(server, "ca_pem_path", True))
    response.raise_for_status()
    return dict(response.json()["by_endpoint"])


def spent(before: dict[str, int], after: dict[str, int], endpoint: str) -> int:
    return after.get(endpoint, 0) - before.get(endpoint, 0)


def hubspot_pipeline(
    server: HubSpotSandboxServer, state_url: str, rule: dict[str, Any]
) -> tuple[SyncPipeline, StateStore]:
    config = parse_config(
        {
            "crm": "hubspot",
            "hubspot": {"access_token": server.token, "base_url": server.url, "rate_limit_per_10s": 5000},
            "state": {"url": state_url},
            "sync": {"settle_s": 0},
            "scoring": {"fit": [rule]},
        }
    )
    app = build_app(config)
    store = app.store()
    pipe = app.pipeline(store)
    pipe.recheck_per_pass = 0  # the outcome re-check reads deal associations on purpose (test_outcome_recheck)
    return pipe, store


def hits(store: StateStore, ids: list[str], rule: str) -> dict[str, bool]:
    scores = store.get_scores(ids)
    return {i: any(h["rule"] == rule for h in scores[i].hits) for i in ids}


def test_hubspot_company_industry_scores_contacts_without_their_own_and_follows_company_edits(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=900, seed=41, now=None)
    portal = server.portal
    companies = [c for c in portal.company_ids() if portal.company_contacts(c)]
    bare = next(
        c for c in companies if any(not (portal.contact(i) or {}).get("industry") for i in portal.company_contacts(c))
    )
    portal.update_company(bare, {"industry": NICHE})
    pipe, store = hubspot_pipeline(server, store_url, RULE)
    try:
        first = pipe.run_once()
        members = portal.company_contacts(bare)
        own_empty = [i for i in members if not (portal.contact(i) or {}).get("industry")]
        assert own_empty and all(hits(store, own_empty, "niche_company").values())
        lead = pipe.mapping.to_lead(own_empty[0], store.get_leads(own_empty)[own_empty[0]].properties)
        assert lead.industry == NICHE and lead.attributes["company.industry"] == NICHE  # the company's value
        others = [i for i in portal.contact_ids() if portal.primary_company(i) != bare]
        assert not any(hits(store, others, "niche_company").values())
        assert first.leads_read == 900
        pipe.run_once()  # reads the full pass's own write-backs

        # edit many companies through the SDK; their contacts' scores follow on the next incremental pass
        edited = [c for c in companies if c != bare][:120]
        client = server.client()
        for company_id in edited:
            client.crm.companies.basic_api.update(company_id, SimplePublicObjectInput(properties={"industry": NICHE}))
        contacts = sorted({i for c in edited for i in portal.company_contacts(c)}, key=int)
        before_scores = store.get_scores(contacts)
        before = sandbox_stats(server)
        third = pipe.run_once()
        after = sandbox_stats(server)
        scores = store.get_scores(contacts)
        in_crm = all_contacts(server, ["leadsync_score"])
    finally:
        store.close()
    assert third.companies_changed == len(edited) and third.company_rescored == len(contacts)
    assert third.leads_read == 0  # no contact was read again: they were rescored from the cache
    assert all(hits_ for hits_ in (any(h["rule"] == "niche_company" for h in scores[i].hits) for i in contacts))
    changed = [i for i in contacts if scores[i].total != before_scores[i].total]
    assert changed and len(changed) <= third.leads_written <= len(contacts)  # reasons may move without the total
    assert all(in_crm[i]["leadsync_score"] == str(scores[i].total) for i in contacts)
    # the company side of the pass: search pages only (their results carry the new values)
    extra = sum(spent(before, after, e) for e in (COMPANY_SEARCH, COMPANY_READ, COMPANY_ASSOCIATIONS))
    assert spent(before, after, COMPANY_SEARCH) == math.ceil(len(edited) / 200) == extra
    assert extra <= 2 * math.ceil(len(edited) / 100)
    assert spent(before, after, CONTACT_SEARCH) == 1  # the contacts window, empty


def test_hubspot_contact_changes_read_their_company_once_and_then_from_the_cache(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=300, seed=42, now=None)
    pipe, store = hubspot_pipeline(server, store_url, RULE)
    try:
        before = sandbox_stats(server)
        pipe.run_once()
        middle = sandbox_stats(server)
        pipe.run_once()
        ids = server.portal.contact_ids()[:40]
        for contact_id in ids:
            server.portal.update_contact(contact_id, {"jobtitle": "VP of Sales"})
        third_before = sandbox_stats(server)
        third = pipe.run_once()
        after = sandbox_stats(server)
        links = store.lead_companies(server.portal.contact_ids())
    finally:
        store.close()
    companies = {c for c in (server.portal.primary_company(i) for i in server.portal.contact_ids()) if c}
    assert links == {i: c for i in server.portal.contact_ids() if (c := server.portal.primary_company(i))}
    # the full pass: one associations read for 300 contacts, one batch read per 100 companies
    assert spent(before, middle, COMPANY_ASSOCIATIONS) == 1
    assert spent(before, middle, COMPANY_READ) == math.ceil(len(companies) / 100)
    # 40 changed contacts: their primary companies come from the cache
    assert third.leads_read - third.own_writes_read_back >= 40
    assert spent(third_before, after, COMPANY_ASSOCIATIONS) == 1 and spent(third_before, after, COMPANY_READ) == 0


def test_salesforce_company_industry_comes_from_the_account_in_the_same_query(
    salesforce_sandbox_factory: Callable[..., SalesforceSandboxServer], tmp_path: Path
) -> None:
    server = salesforce_sandbox_factory(leads=0, contacts=150, seed=43)
    accounts = rows(server, "Account", ["Industry"])
    contacts = rows(server, "Contact", ["AccountId"])
    industry = max(
        {a["Industry"] for a in accounts.values() if a["Industry"]},
        key=lambda v: sum(
            1 for c in contacts.values() if (accounts.get(c["AccountId"] or "") or {}).get("Industry") == v
        ),
    )
    rule = {**RULE, "when": {"company.industry": {"in": [industry]}}}
    matching = sorted(
        i for i, c in contacts.items() if (accounts.get(c["AccountId"] or "") or {}).get("Industry") == industry
    )
    costs = {}
    account_fields = ["company", "industry", "employees", "annual_revenue", *(f"company.{a}" for a in ACCOUNT)]
    without = {"objects": {"contact": {**dict.fromkeys(account_fields), "country": "MailingCountry"}}}
    for name, mapping in (("with", None), ("without", without)):
        config = sf_config(server, f"sqlite:///{tmp_path / f'{name}.db'}") | {"scoring": {"fit": [rule]}}
        if mapping is not None:
            config["mapping"] = mapping
            config["scoring"] = {"fit": []}
        app = build_app(parse_config(config, source="<test>"))
        store = app.store()
        try:
            before = sandbox_stats(server)
            app.pipeline(store).run_once()
            costs[name] = {k: v for k, v in sandbox_stats(server).items() if "query" in k.lower()}
            costs[name] = {k: v - before.get(k, 0) for k, v in costs[name].items()}
            if name == "with":
                got = hits(store, sorted(contacts), "niche_company")
                cached = store.get_leads(matching)
        finally:
            store.close()
    assert matching and all(got[i] for i in matching)  # a Contact has no Industry of its own: the Account's
    assert not any(got[i] for i in contacts if i not in matching)
    assert all(cached[i].properties.get("Account.Industry") == industry for i in matching)
    assert costs["with"] == costs["without"]  # relationship fields in the same query: no extra call


def test_a_changed_company_rescores_contacts_the_pass_reads_back_unchanged(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], store_url: str
) -> None:
    """Contacts the window reads again with nothing changed (an echo) are skipped by the read: their
    company's change still reaches them, from the cache."""
    server = hubspot_sandbox_factory(contacts=300, seed=44, now=None)
    pipe, store = hubspot_pipeline(server, store_url, RULE)
    portal = server.portal
    try:
        pipe.run_once()
        pipe.run_once()
        company = next(c for c in portal.company_ids() if len(portal.company_contacts(c)) >= 3)
        members = portal.company_contacts(company)
        portal.update_company(company, {"industry": NICHE})
        portal.bulk_stamp(members)  # their modification time moves, none of their values
        summary = pipe.run_once()
        got = hits(store, members, "niche_company")
    finally:
        store.close()
    assert summary.own_writes_read_back + summary.unchanged_read_back >= len(members)
    assert summary.companies_changed == 1 and summary.company_rescored == len(members)
    assert all(got.values())


def test_a_token_without_the_companies_scope_is_told_which_scope_to_add() -> None:
    import hubspot
    import pytest

    from connectors._hubspot_companies import HubSpotCompanyReader
    from connectors.errors import AuthError

    def refused(label: str, fn: object, **kwargs: object) -> tuple[object, int]:
        raise AuthError("HubSpot refused the access token (403): missing scopes", status=403)

    reader = HubSpotCompanyReader(refused, hubspot.Client.create(access_token="unused"))
    with pytest.raises(AuthError) as caught:
        reader.primary_companies(["101"])
    assert "crm.objects.companies.read" in str(caught.value) and caught.value.status == 403
