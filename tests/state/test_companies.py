"""The company cache: each lead's primary company and the company's mapped properties, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from sync.state import CachedCompany, CachedLead, StateStore

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_companies_are_replaced_whole_and_read_back_by_id(store: StateStore) -> None:
    store.upsert_companies([CachedCompany("7", {"industry": "Retail", "name": "Acme"}, AT)])
    store.upsert_companies([CachedCompany("7", {"industry": "Software"}, None), CachedCompany("8", {}, AT)])
    got = store.get_companies(["7", "8", "9"])
    assert set(got) == {"7", "8"}
    assert got["7"] == CachedCompany("7", {"industry": "Software"}, None)  # replaced whole
    assert got["8"].updated_at == AT


def test_links_move_with_the_lead_and_each_company_knows_its_leads(store: StateStore) -> None:
    store.link_companies({"1": "7", "2": "7", "3": "8"})
    assert store.company_leads(["7", "8", "9"]) == {"7": ["1", "2"], "8": ["3"]}
    store.link_companies({"2": "8", "3": None})  # a lead moved to another company; another has none now
    assert store.lead_companies(["1", "2", "3"]) == {"1": "7", "2": "8"}
    assert store.company_leads(["7", "8"]) == {"7": ["1"], "8": ["2"]}


def test_forgetting_a_lead_drops_its_link_but_keeps_the_company(store: StateStore) -> None:
    store.upsert_leads([CachedLead("1", "contact", "a@acme.com", {}, [], AT)])
    store.upsert_companies([CachedCompany("7", {"industry": "Software"}, AT)])
    store.link_companies({"1": "7"})
    store.delete_leads(["1"])
    assert store.lead_companies(["1"]) == {} and store.company_leads(["7"]) == {}
    assert "7" in store.get_companies(["7"])
