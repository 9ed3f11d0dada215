"""``leadsync demo``: the whole product against an in-process HubSpot or Salesforce sandbox, leaving nothing behind."""

from __future__ import annotations

import heapq
import random
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.sandbox.hubspot import HubSpotPortal, start_hubspot_sandbox
from connectors.sandbox.salesforce import SalesforceOrg, start_salesforce_sandbox
from leadsync.app import build_app
from leadsync.config import Config, parse_config
from sync.pipeline import SUMMARY_KEYS, Progress, SyncSummary

#: runs one pass under a progress display: (quiet, work) -> summary
ProgressRunner = Callable[[bool, Callable[[Progress], SyncSummary]], SyncSummary]

#: requests per 10 s the demo's sandbox allows (and the connector keeps to)
DEMO_RATE_LIMIT = 2000


def simulate_engagement(portal: HubSpotPortal, share: float, seed: int) -> int:
    """Give a share of contacts new web and email activity, as marketing would between two syncs."""
    rng = random.Random(seed)
    ids = portal.contact_ids()
    chosen = rng.sample(ids, max(1, int(len(ids) * share)))
    for contact_id in chosen:
        current = portal.contact(contact_id) or {}

        def bump(name: str, low: int, high: int, props: dict[str, str] = current) -> str:
            value = props.get(name) or "0"
            return str(int(float(value)) + rng.randint(low, high))

        portal.track_engagement(
            contact_id,
            {
                "hs_analytics_num_page_views": bump("hs_analytics_num_page_views", 3, 25),
                "hs_analytics_num_visits": bump("hs_analytics_num_visits", 1, 4),
                "num_conversion_events": bump("num_conversion_events", 0, 2),
                "hs_email_click": bump("hs_email_click", 0, 3),
            },
        )
    return len(chosen)


def simulate_salesforce_engagement(org: SalesforceOrg, share: float, seed: int) -> int:
    """Log calls and meetings on a share of open leads and contacts, as sales would between two syncs."""
    rng = random.Random(seed)
    people = [r["Id"] for r in org.records("Lead") if not r.get("IsConverted")] + org.ids("Contact")
    chosen = rng.sample(people, max(1, int(len(people) * share)))
    today = datetime.now(UTC)
    for person in chosen:
        for _ in range(rng.randint(1, 3)):
            org.create_record(
                "Task",
                {
                    "WhoId": person,
                    "Subject": "Call",
                    "TaskSubtype": "Call",
                    "Status": "Completed",
                    "ActivityDate": today.date().isoformat(),
                },
            )
        org.create_record(
            "Event",
            {
                "WhoId": person,
                "Subject": "Demo",
                "StartDateTime": today.isoformat(),
                "ActivityDateTime": today.isoformat(),
                "EndDateTime": today.isoformat(),
                "DurationInMinutes": 30,
            },
        )
    return len(chosen)


def run_demo(
    *, contacts: int = 2000, seed: int = 7, progress: ProgressRunner | None = None, crm: str = "hubspot"
) -> dict[str, Any]:
    """Seed a sandbox, sync, let some contacts engage, sync again; return what happened."""
    if crm == "salesforce":
        return run_salesforce_demo(records=contacts, seed=seed, progress=progress)
    # the sandbox speaks HubSpot's rate-limit protocol, at a local machine's pace (a real portal: 100-190)
    with (
        tempfile.TemporaryDirectory(prefix="leadsync-demo-") as tmp,
        start_hubspot_sandbox(contacts=contacts, seed=seed, rate_limit=f"{DEMO_RATE_LIMIT}/10s") as server,
    ):
        config = _demo_config(
            tmp,
            "hubspot",
            {"access_token": server.token, "base_url": server.url, "rate_limit_per_10s": DEMO_RATE_LIMIT},
        )
        first, second, engaged, top = _two_passes(
            config, lambda: simulate_engagement(server.portal, 0.05, seed), progress
        )
        stats, url = server.stats(), server.url
    return _result(first, second, engaged, top, stats, url, crm="hubspot", records=contacts, seed=seed)


def run_salesforce_demo(
    *, records: int = 2000, seed: int = 7, progress: ProgressRunner | None = None
) -> dict[str, Any]:
    """The same flow against the Salesforce sandbox: HTTPS with a throwaway CA, client-credentials login,
    Leads and Contacts, Leadsync_*__c fields created through the Tooling API, a record-triggered Flow setup."""
    leads = records * 3 // 5
    with (
        tempfile.TemporaryDirectory(prefix="leadsync-demo-") as tmp,
        start_salesforce_sandbox(
            leads=leads, contacts=records - leads, seed=seed, ca_file=Path(tmp) / "sandbox-ca.pem"
        ) as server,
    ):
        config = _demo_config(
            tmp,
            "salesforce",
            {
                "instance_url": server.instance_url,
                "login_url": server.url,
                "client_id": server.client_id,
                "client_secret": server.client_secret,
                "ca_file": server.ca_pem_path,
            },
        )
        first, second, engaged, top = _two_passes(
            config, lambda: simulate_salesforce_engagement(server.org, 0.05, seed), progress
        )
        stats, url = server.stats(), server.url
    return _result(first, second, engaged, top, stats, url, crm="salesforce", records=records, seed=seed)


def _demo_config(folder: str, crm: str, section: dict[str, Any]) -> Config:
    """A config for a sandbox: its connection ``section``, a state store in ``folder``, nothing to settle
    (the in-process sandboxes index writes at once)."""
    return parse_config(
        {crm: section, "crm": crm, "state": {"url": f"sqlite:///{Path(folder) / 'state.db'}"}, "sync": {"settle_s": 0}},
        source="<demo>",
    )


def _two_passes(
    config: Config, engage: Callable[[], int], progress: ProgressRunner | None
) -> tuple[SyncSummary, SyncSummary, int, list[dict[str, Any]]]:
    """Sync, let some people engage in the CRM, sync again; the hottest leads at the end."""
    application = build_app(config)
    store = application.store()
    try:

        def one_pass(callback: Progress) -> SyncSummary:
            return application.pipeline(store, callback).run_once()

        def run() -> SyncSummary:
            return progress(False, one_pass) if progress else one_pass(lambda event, n: None)

        first = run()
        engaged = engage()
        second = run()
        return first, second, engaged, top_leads(store, 5)
    finally:
        store.close()


def _result(
    first: SyncSummary,
    second: SyncSummary,
    engaged: int,
    top: list[dict[str, Any]],
    stats: dict[str, Any],
    url: str,
    *,
    crm: str,
    records: int,
    seed: int,
) -> dict[str, Any]:
    passes = [first.as_dict(), second.as_dict()]
    totals: dict[str, Any] = {key: sum(p[key] for p in passes) for key in SUMMARY_KEYS}
    totals["duration_s"] = round(totals["duration_s"], 3)
    return {
        **totals,
        "crm": crm,
        "contacts": records,
        "seed": seed,
        "engaged_between_passes": engaged,
        "passes": passes,
        "top_leads": top,
        "sandbox": {"url": url, **stats},
    }


def top_leads(store: Any, n: int) -> list[dict[str, Any]]:
    """The ``n`` highest scores in the state store, with their reasons."""
    best: list[tuple[int, str, dict[str, Any]]] = []
    for chunk in store.iter_leads(chunk_size=1000):
        scores = store.get_scores([lead.id for lead in chunk])
        for lead in chunk:
            score = scores.get(lead.id)
            if score is None:
                continue
            row = {
                "id": lead.id,
                "email": lead.email,
                "score": score.total,
                "grade": score.grade,
                "reasons": score.reasons,
            }
            heapq.heappush(best, (score.total, lead.id, row))
            if len(best) > n:
                heapq.heappop(best)
    return [row for _, _, row in sorted(best, reverse=True)]
