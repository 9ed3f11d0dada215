"""The Salesforce sandbox's SOQL, driven through ``simple-salesforce`` over real HTTPS: paging, cursors, filters,
ordering, relationship fields and errors, each checked against plain Python over the stored records."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
)

from connectors.sandbox.salesforce import (
    SalesforceSandboxServer,
    soql,
)
from tests.sandbox._salesforce import (
    SCORE_FIELD,
    Factory,
    Record,
    _client,
    _code,
    _open_leads,
    _records,
    _soql_dt,
    _strip,
)

# SOQL: results and paging ----------------------------------------------------------------------------------


def test_query_all_iter_follows_next_records_url(sandbox: SalesforceSandboxServer) -> None:
    sf = _client(sandbox)
    stored = _records(sandbox, "CampaignMember")
    assert len(stored) > 600
    batch = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query("SELECT Id, Status FROM CampaignMember", headers=batch)
    assert first["totalSize"] == len(stored)
    assert not first["done"]
    assert len(first["records"]) == 200
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-200", first["nextRecordsUrl"])
    fields = ("Id", "CampaignId", "LeadId", "ContactId", "Status", "HasResponded", "FirstRespondedDate")
    got = list(sf.query_all_iter(f"SELECT {', '.join(fields)} FROM CampaignMember", headers=batch))
    assert [r["Id"] for r in got] == sorted(stored)  # no ORDER BY: id order, every record once
    for record in got:
        url = f"/services/data/v59.0/sobjects/CampaignMember/{record['Id']}"
        assert record["attributes"] == {"type": "CampaignMember", "url": url}
        assert _strip(record) == {k: stored[record["Id"]][k] for k in fields}
    calls = sandbox.stats()["by_endpoint"]
    assert calls["GET /services/data/v{version}/query/{cursor}"] == -(-len(stored) // 200) - 1


def test_default_batch_is_2000_and_batch_size_is_bounded(sf_factory: Factory) -> None:
    server = sf_factory(leads=2100, seed=2)
    sf = _client(server)
    page = sf.query("SELECT Id FROM Lead")
    assert (page["totalSize"], len(page["records"]), page["done"]) == (2100, 2000, False)
    rest = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert (len(rest["records"]), rest["done"]) == (100, True)
    assert "nextRecordsUrl" not in rest
    small = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(small["records"]) == 200  # 200 is the minimum
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)  # a finished cursor is gone
    assert _code(caught.value) == "INVALID_QUERY_LOCATOR"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more("01g8d0000000000AAA-2000")
    assert _code(caught.value) == "INVALID_QUERY_LOCATOR"


def test_a_cursor_pages_a_stable_snapshot(sf_factory: Factory) -> None:
    server = sf_factory(leads=450, seed=4, custom_fields=SCORE_FIELD)
    sf = _client(server)
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query("SELECT Id, Title, Leadsync_Score__c FROM Lead ORDER BY Id", headers=headers)
    ids = sorted(_records(server, "Lead"))
    # change records on later pages, and delete one, while the cursor is open
    later = [i for i in _open_leads(server) if i > ids[250]][:10]
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Lead"}, "id": i, "Leadsync_Score__c": 99} for i in later]},
    )
    assert all(r["success"] for r in results)
    sf.Lead.delete(ids[300])
    rows = list(first["records"])
    url = first.get("nextRecordsUrl")
    while url:
        page = sf.query_more(url, identifier_is_url=True, headers=headers)
        assert page["totalSize"] == 450
        rows.extend(page["records"])
        url = page.get("nextRecordsUrl")
    assert [r["Id"] for r in rows] == ids
    assert all(r["Leadsync_Score__c"] is None for r in rows)  # the values as of the query
    assert (
        sf.query(f"SELECT Leadsync_Score__c FROM Lead WHERE Id = '{later[0]}'")["records"][0]["Leadsync_Score__c"] == 99
    )
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 449
    deleted = sf.query_all("SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true", include_deleted=True)
    assert [r["Id"] for r in deleted["records"]] == [ids[300]]


def test_system_modstamp_filter_with_ties_and_keyset_paging(sf_factory: Factory) -> None:
    server = sf_factory(leads=300, seed=5, custom_fields=SCORE_FIELD)
    sf = _client(server)
    ids = server.org.ids("Lead")
    writable = [i for i in ids if not server.org.record("Lead", i)["IsConverted"]]
    # one collection call: every record gets the same stamp (a tie), never ahead of the wall clock
    batch = writable[:40]
    before_write = datetime.now(UTC)
    sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Lead"}, "id": i, "Leadsync_Score__c": 7} for i in batch]},
    )
    stamps = {server.org.record("Lead", i)["SystemModstamp"] for i in batch}
    assert len(stamps) == 1
    tie = stamps.pop()
    assert before_write - timedelta(milliseconds=1) <= datetime.fromisoformat(tie) <= datetime.now(UTC)
    # a system job touches 60 more with one identical stamp, earlier: SystemModstamp only
    touched = ids[100:160]
    old_modified = {i: server.org.record("Lead", i)["LastModifiedDate"] for i in touched}
    job_stamp = server.org.touch("Lead", touched, at=datetime(2025, 2, 1, 12, 0, tzinfo=UTC))
    assert job_stamp == "2025-02-01T12:00:00.000+0000"
    assert {i: server.org.record("Lead", i)["LastModifiedDate"] for i in touched} == old_modified

    stored = _records(server, "Lead")
    expected_after = sorted(i for i, r in stored.items() if r["SystemModstamp"] > job_stamp)
    got = sf.query_all(f"SELECT Id FROM Lead WHERE SystemModstamp > {_soql_dt(job_stamp)} ORDER BY Id")
    assert [r["Id"] for r in got["records"]] == expected_after
    got_ge = sf.query_all(f"SELECT Id FROM Lead WHERE SystemModstamp >= {_soql_dt(job_stamp)}")
    assert len(got_ge["records"]) == len(expected_after) + len([i for i in touched if i not in batch])
    assert {r["Id"] for r in sf.query_all(f"SELECT Id FROM Lead WHERE SystemModstamp = {tie}")["records"]} == set(batch)

    # keyset paging by (SystemModstamp, Id) in pages of 7 never loops or skips, whatever the ties
    order = sorted(stored, key=lambda i: (stored[i]["SystemModstamp"], i))
    seen: list[str] = []
    q = "SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp ASC, Id ASC LIMIT 7"
    while True:
        page = sf.query(q)["records"]
        if not page:
            break
        seen.extend(r["Id"] for r in page)
        last_stamp, last_id = page[-1]["SystemModstamp"], page[-1]["Id"]
        q = (
            f"SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp > {last_stamp} "
            f"OR (SystemModstamp = {last_stamp} AND Id > '{last_id}') ORDER BY SystemModstamp ASC, Id ASC LIMIT 7"
        )
    assert seen == order


def test_system_modstamp_and_id_filters_use_an_index(sf_factory: Factory) -> None:
    """Structural, not timed (speed is for benchmarks/salesforce_sandbox.py): only the slice is looked at."""
    server = sf_factory(leads=3000, seed=6)
    org = server.org
    stamps = sorted(r["SystemModstamp"] for r in org.records("Lead"))
    newest = stamps[-50]
    ran = org.compile_and_run(f"SELECT Id FROM Lead WHERE SystemModstamp >= {newest} ORDER BY SystemModstamp, Id")
    assert (ran.plan, ran.scanned) == ("index", len([s for s in stamps if s >= newest]))
    assert [r[0] for r in ran.rows] == [
        i
        for _s, i in sorted(
            (r["SystemModstamp"], r["Id"]) for r in org.records("Lead") if r["SystemModstamp"] >= newest
        )
    ]
    keyset = org.compile_and_run(
        f"SELECT Id FROM Lead WHERE (SystemModstamp > {newest} OR (SystemModstamp = {newest} "
        f"AND Id > '{ran.rows[0][0]}')) AND IsConverted = false ORDER BY SystemModstamp, Id LIMIT 10"
    )
    assert keyset.plan == "index"
    assert keyset.scanned <= 50
    some = org.ids("Lead")[:3]
    by_id = org.compile_and_run(f"SELECT Id FROM Lead WHERE Id IN ('{some[0]}', '{some[1][:15]}') AND Email != null")
    assert (by_id.plan, by_id.scanned) == ("ids", 2)
    assert org.compile_and_run("SELECT Id FROM Lead WHERE Email != null").plan == "scan"


WHERE_CASES: list[tuple[str, Callable[[Record], bool]]] = [
    ("Status = 'Working - Contacted'", lambda r: r["Status"] == "Working - Contacted"),
    ("status = 'working - contacted'", lambda r: r["Status"] == "Working - Contacted"),
    ("Status != 'Open - Not Contacted'", lambda r: r["Status"] != "Open - Not Contacted"),
    ("Status <> 'Open - Not Contacted'", lambda r: r["Status"] != "Open - Not Contacted"),
    ("NumberOfEmployees > 500", lambda r: r["NumberOfEmployees"] is not None and r["NumberOfEmployees"] > 500),
    ("NumberOfEmployees <= 50", lambda r: r["NumberOfEmployees"] is not None and r["NumberOfEmployees"] <= 50),
    ("AnnualRevenue >= 2500000.5", lambda r: r["AnnualRevenue"] is not None and r["AnnualRevenue"] >= 2500000.5),
    ("Industry IN ('Technology', 'finance')", lambda r: r["Industry"] in ("Technology", "Finance")),
    ("Industry NOT IN ('Technology')", lambda r: r["Industry"] != "Technology"),
    ("Email LIKE '%@gmail.com'", lambda r: (r["Email"] or "").lower().endswith("@gmail.com")),
    ("Email LIKE 'j_me%'", lambda r: re.fullmatch(r"j.me.*", (r["Email"] or "").lower(), re.DOTALL) is not None),
    ("NOT Email LIKE '%gmail%'", lambda r: "gmail" not in (r["Email"] or "").lower()),
    ("Email = null", lambda r: r["Email"] is None),
    ("Email != NULL", lambda r: r["Email"] is not None),
    ("IsConverted = TRUE", lambda r: r["IsConverted"] is True),
    (
        "HasOptedOutOfEmail = false AND IsConverted = false",
        lambda r: not r["HasOptedOutOfEmail"] and not r["IsConverted"],
    ),
    (
        "(Status = 'Closed - Converted' OR HasOptedOutOfEmail = true) AND Title != null",
        lambda r: (r["Status"] == "Closed - Converted" or r["HasOptedOutOfEmail"]) and r["Title"] is not None,
    ),
    (
        "NOT (Country = 'United States' OR Country = 'Germany')",
        lambda r: r["Country"] not in ("United States", "Germany"),
    ),
    (
        "CreatedDate >= 2024-06-01T00:00:00Z AND CreatedDate < 2024-09-01T00:00:00.000+0000",
        lambda r: "2024-06-01T00:00:00.000+0000" <= r["CreatedDate"] < "2024-09-01T00:00:00.000+0000",
    ),
    ("CreatedDate > 2024-06-01T02:00:00+02:00", lambda r: r["CreatedDate"] > "2024-06-01T00:00:00.000+0000"),
    ("ConvertedDate > 2024-06-30", lambda r: r["ConvertedDate"] is not None and r["ConvertedDate"] > "2024-06-30"),
    ("ConvertedDate = LAST_N_DAYS:3650", lambda r: r["ConvertedDate"] is not None),
    ("Company = 'O\\'Neil\\'s' OR Title = 'CEO'", lambda r: r["Company"] == "O'Neil's" or r["Title"] == "CEO"),
]


@pytest.mark.parametrize(("where", "expected"), WHERE_CASES, ids=[c[0] for c in WHERE_CASES])
def test_where_clause_matches_plain_python(
    shared_sandbox: SalesforceSandboxServer, shared_client: Salesforce, where: str, expected: Callable[[Record], bool]
) -> None:
    stored = _records(shared_sandbox, "Lead")
    want = sorted(i for i, r in stored.items() if expected(r))
    got = shared_client.query_all(f"select id from LEAD where {where} order by ID")
    assert [r["Id"] for r in got["records"]] == want
    assert all(set(r) == {"attributes", "Id"} for r in got["records"])  # canonical casing of the keys
    assert want or where.startswith(("Company", "Email LIKE 'j_"))  # the cases select something real


def test_order_by_limit_offset_nulls_and_count(
    shared_sandbox: SalesforceSandboxServer, shared_client: Salesforce
) -> None:
    sf = shared_client
    stored = list(_records(shared_sandbox, "Lead").values())
    got = sf.query("SELECT Id, NumberOfEmployees FROM Lead ORDER BY NumberOfEmployees DESC NULLS FIRST, Id LIMIT 40")
    want = sorted(stored, key=lambda r: r["Id"])
    want.sort(key=lambda r: (r["NumberOfEmployees"] is not None, -(r["NumberOfEmployees"] or 0)))
    assert [r["Id"] for r in got["records"]] == [r["Id"] for r in want[:40]]
    asc = sf.query("SELECT Id FROM Lead ORDER BY NumberOfEmployees, Id LIMIT 30 OFFSET 10")["records"]
    default = sorted(stored, key=lambda r: r["Id"])
    default.sort(key=lambda r: (r["NumberOfEmployees"] is not None, r["NumberOfEmployees"] or 0))  # nulls first
    assert [r["Id"] for r in asc] == [r["Id"] for r in default[10:40]]
    by_name = sf.query("SELECT LastName FROM Lead ORDER BY LastName DESC, Id")["records"]
    names = [r["LastName"] for r in by_name]
    assert names == sorted(names, key=str.casefold, reverse=True)
    count = sf.query("SELECT COUNT() FROM Lead WHERE IsConverted = true")
    assert count == {"totalSize": sum(1 for r in stored if r["IsConverted"]), "done": True, "records": []}


def test_relationship_fields_are_nested_records(
    shared_sandbox: SalesforceSandboxServer, shared_client: Salesforce
) -> None:
    sandbox, sf = shared_sandbox, shared_client
    accounts = _records(sandbox, "Account")
    contacts = sf.query_all("SELECT Id, Name, Account.Name, Account.Industry FROM Contact WHERE AccountId != null")
    assert contacts["records"]
    for record in contacts["records"]:
        stored = sandbox.org.record("Contact", record["Id"])
        assert stored is not None
        account = accounts[stored["AccountId"]]
        assert record["Account"]["attributes"]["type"] == "Account"
        assert (record["Account"]["Name"], record["Account"]["Industry"]) == (account["Name"], account["Industry"])
    leads = sf.query("SELECT Id, ConvertedContact.Email FROM Lead WHERE IsConverted = false LIMIT 1")["records"]
    assert leads[0]["ConvertedContact"] is None
    task = sf.query("SELECT Id, WhoId, Who.Name FROM Task LIMIT 1")["records"][0]
    who = task["WhoId"]
    assert task["Who"]["attributes"]["type"] == "Name"  # polymorphic relationship
    assert task["Who"]["Name"] == (sandbox.org.record("Lead", who) or sandbox.org.record("Contact", who))["Name"]
    filtered = sf.query_all("SELECT Id FROM Contact WHERE Account.Industry = 'Technology'")["records"]
    want = {
        c["Id"]
        for c in sandbox.org.records("Contact")
        if c["AccountId"] and accounts[c["AccountId"]]["Industry"] == "Technology"
    }
    assert {r["Id"] for r in filtered} == want


@pytest.mark.parametrize(
    ("query", "code", "fragment"),
    [
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT Id FROM Lead WHERE Email = 'a' OR Email = 'b' AND Title = 'c'", "MALFORMED_QUERY", "AND"),
        ("SELECT Id, FROM Lead", "MALFORMED_QUERY", "unexpected token: FROM"),
        ("SELECT Id FROM Lead GROUP BY Status", "MALFORMED_QUERY", "GROUP BY is not supported"),
        ("SELECT COUNT(Id) FROM Lead", "MALFORMED_QUERY", "aggregates are not supported"),
        ("SELECT Id, (SELECT Id FROM Tasks) FROM Lead", "MALFORMED_QUERY", "subqueries"),
        ("SELECT Id FROM Lead WHERE Id IN (SELECT WhoId FROM Task)", "MALFORMED_QUERY", "semi-join"),
        ("SELECT Id FROM Lead WHERE Email = 'unterminated", "MALFORMED_QUERY", "unterminated"),
        ("SELECT Id FROM Lead WHERE Email = 'bad \\q escape'", "MALFORMED_QUERY", "escape"),
        ("SELECT Id FROM Lead WHERE Email = :email", "MALFORMED_QUERY", "bind variables"),
        ("SELECT Id FROM Lead WHERE CreatedDate > THIS_QUARTER", "MALFORMED_QUERY", "THIS_QUARTER"),
        ("SELECT Id FROM Lead LIMIT -1", "MALFORMED_QUERY", "LIMIT"),
        ("SELECT Id FROM Lead WHERE SystemModstamp > 2024-13-01T00:00:00Z", "MALFORMED_QUERY", "invalid datetime"),
        ("SELECT Id FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "2000"),
        ("SELECT Id, Id FROM Lead", "MALFORMED_QUERY", "duplicate field"),
        ("SELECT Id, Leadsync_Score__c FROM Lead", "INVALID_FIELD", "No such column 'Leadsync_Score__c'"),
        ("SELECT Id FROM Lead WHERE Bogus = 1", "INVALID_FIELD", "No such column 'Bogus' on entity 'Lead'"),
        ("SELECT Id FROM Lead ORDER BY Bogus", "INVALID_FIELD", "Bogus"),
        ("SELECT Owner.Bogus FROM Lead", "INVALID_FIELD", "No such column 'Bogus' on entity 'User'"),
        ("SELECT Bogus.Name FROM Lead", "INVALID_FIELD", "Didn't understand relationship 'Bogus'"),
        ("SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01'", "INVALID_FIELD", "must be of type dateTime"),
        ("SELECT Id FROM Lead WHERE SystemModstamp > 2024-01-01", "INVALID_FIELD", "must be of type dateTime"),
        ("SELECT Id FROM Lead WHERE NumberOfEmployees > '5'", "INVALID_FIELD", "must be of type integer"),
        ("SELECT Id FROM Lead WHERE IsConverted = 'true'", "INVALID_FIELD", "must be of type boolean"),
        ("SELECT Id FROM Lead WHERE Email = 5", "INVALID_FIELD", "must be of type string"),
        ("SELECT Id FROM Lead WHERE NumberOfEmployees LIKE '5%'", "INVALID_FIELD", "invalid operator"),
        ("SELECT Id FROM Lead WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field"),
        ("SELECT Id FROM Leads", "INVALID_TYPE", "sObject type 'Leads' is not supported"),
    ],
)
def test_bad_queries_get_salesforce_errors(shared_client: Salesforce, query: str, code: str, fragment: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        shared_client.query(query)
    assert caught.value.status == 400
    assert _code(caught.value) == code
    assert fragment in caught.value.content[0]["message"]


def test_error_messages_point_at_the_token() -> None:
    with pytest.raises(soql.SoqlError) as caught:
        soql.parse_query("SELECT Id\nFROM Lead WHERE Email = = 'x'")
    assert caught.value.message == (
        "\nFROM Lead WHERE Email = = 'x'\n                        ^\nERROR at Row:2:Column:25\nunexpected token: ="
    )


def test_parser_builds_the_tree() -> None:
    query = soql.parse_query(
        "select Id, Account.Name from Contact where (Email like 'a\\_b%' or not HasOptedOutOfEmail = true) "
        "and CreatedDate >= 2024-01-01T10:00:00.5-02:00 and LastName not in ('x', null) "
        "order by CreatedDate desc nulls last, Id limit 10 offset 5"
    )
    assert [f.path for f in query.fields] == [("Id",), ("Account", "Name")]
    assert query.sobject == "Contact"
    assert isinstance(query.where, soql.And)
    first, second, third = query.where.operands
    assert isinstance(first, soql.Or)
    assert isinstance(first.operands[0], soql.Like)
    assert first.operands[0].pattern.value == "a\\_b%"
    assert isinstance(first.operands[1], soql.Not)
    assert isinstance(second, soql.Comparison)
    assert second.value.kind == "datetime"
    assert second.value.value == "2024-01-01T12:00:00.500+0000"
    assert isinstance(third, soql.InList)
    assert third.negated
    assert [v.kind for v in third.values] == ["string", "null"]
    assert query.order_by == (
        soql.OrderItem(query.order_by[0].field, True, False),
        soql.OrderItem(query.order_by[1].field, False, None),
    )
    assert (query.limit, query.offset) == (10, 5)
    assert soql.parse_query("SELECT COUNT() FROM Lead").count
    days = soql.parse_condition("CreatedDate = LAST_N_DAYS:30")
    assert isinstance(days, soql.Comparison)
    assert days.value.value == ("LAST_N_DAYS", 30)
