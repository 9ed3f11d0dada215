"""Seeding an org with synthetic people: leads or contacts with accounts, owners and campaign history."""

from __future__ import annotations

from collections.abc import Iterable

from connectors.sandbox._server import (
    gc_paused,
)
from connectors.sandbox.salesforce import soql
from connectors.sandbox.salesforce.store import (
    _INDUSTRY_MAP,
    _SALES_REPS,
    OrgStore,
    _Person,
)
from connectors.sandbox.synthetic import SyntheticPerson

_LEAD_SOURCES_NO_FORM = ("Phone Inquiry", "Partner Referral", "Purchased List", "Other", None)


class SeedingOrg(OrgStore):
    """``seed_people``: synthetic people as Lead or Contact records (their activities follow lazily)."""

    def seed_people(self, people: Iterable[SyntheticPerson], *, as_leads: bool = True) -> list[str]:
        """Add synthetic people as Leads (converted ones also get their Contact and Account) or as Contacts.

        Returns the ids of the Leads (``as_leads``) or Contacts created. Activities (Task, Event,
        CampaignMember) are derived from ``person.events()`` when one of those objects is first read.
        """
        created_ids: list[str] = []
        with self.lock, gc_paused():
            leads, contacts, accounts = self.tables["Lead"], self.tables["Contact"], self.tables["Account"]
            before = (len(leads.rows), len(contacts.rows), len(accounts.rows))
            for person in people:
                created_ids.append(self._seed_person(person, as_lead=as_leads))
            for table, count in zip((leads, contacts, accounts), before, strict=True):
                if len(table.rows) != count:
                    table.rebuild_index()
        return created_ids

    def _account_for(self, person: SyntheticPerson, owner: str, at: str, stamp: str) -> str:
        name = person.company or f"{person.first_name} {person.last_name}".strip() or "Unknown"
        key = name.lower()
        table = self.tables["Account"]
        existing = self._accounts_by_name.get(key)
        if existing is not None:
            if person.converted:
                row = table.rows[existing]
                row[table.obj.by_lower["type"].index] = "Customer - Direct"  # seeding: no snapshot exists yet
            return existing
        aid = self._seed_record(
            "Account",
            {
                **self._audit_values(at, at, max(at, stamp)),
                "Name": name,
                "Type": "Customer - Direct" if person.converted else "Prospect",
                "Industry": _INDUSTRY_MAP.get(person.industry, person.industry or None),
                "AnnualRevenue": float(person.annual_revenue) if person.annual_revenue is not None else None,
                "NumberOfEmployees": person.employees,
                "Website": f"www.{person.company_domain}" if person.company_domain else None,
                "BillingCountry": person.country or None,
                "OwnerId": owner,
            },
            index=False,
        )
        self._accounts_by_name[key] = aid
        return aid

    def _seed_person(self, person: SyntheticPerson, *, as_lead: bool) -> str:
        owner = self._users[1 + person.event_seed % len(_SALES_REPS)]
        created = soql.normalize_datetime(person.created_at)
        stamp = soql.normalize_datetime(person.updated_at)
        first = person.first_name or None
        last = person.last_name or "Unknown"
        common = {
            "FirstName": first,
            "LastName": last,
            "Name": f"{person.first_name} {last}".strip(),
            "Title": person.job_title or None,
            "Email": person.email or None,
            "LeadSource": "Web" if person.form_submissions else _LEAD_SOURCES_NO_FORM[person.event_seed % 5],
            "HasOptedOutOfEmail": person.opted_out,
            "EmailBouncedReason": person.hard_bounce_reason or None,
            "EmailBouncedDate": (
                soql.normalize_datetime(person.created_at + (person.updated_at - person.created_at) / 2)
                if person.hard_bounce_reason
                else None
            ),
            "OwnerId": owner,
        }
        lead_id = contact_id = account_id = None
        converted_at = soql.normalize_datetime(person.customer_at) if person.customer_at else None
        if not as_lead or person.converted:
            contact_created = converted_at if (as_lead and converted_at) else created
            account_id = (
                self._account_for(person, owner, contact_created, stamp)
                if (person.company or person.converted)
                else None
            )
            contact_id = self._seed_record(
                "Contact",
                {
                    **common,
                    **self._audit_values(contact_created, stamp),
                    "AccountId": account_id,
                    "MailingCountry": person.country or None,
                },
                index=False,
            )
        if as_lead:
            lead_id = self._seed_record(
                "Lead",
                {
                    **common,
                    **self._audit_values(created, stamp),
                    "Company": person.company or "[not provided]",
                    "Website": f"www.{person.company_domain}" if person.company_domain else None,
                    "Industry": _INDUSTRY_MAP.get(person.industry, person.industry or None),
                    "AnnualRevenue": float(person.annual_revenue) if person.annual_revenue is not None else None,
                    "NumberOfEmployees": person.employees,
                    "Country": person.country or None,
                    "Status": _lead_status(person),
                    "IsConverted": person.converted,
                    "ConvertedDate": converted_at[:10] if converted_at else None,
                    "ConvertedAccountId": account_id if person.converted else None,
                    "ConvertedContactId": contact_id if person.converted else None,
                },
                index=False,
            )
        self._people.append(_Person(len(self._people), person, lead_id, contact_id, account_id, owner))
        return lead_id if as_lead else contact_id  # type: ignore[return-value]


def _lead_status(person: SyntheticPerson) -> str:
    """Salesforce's lead status from the CRM-neutral stage and status of a synthetic person."""
    if person.converted:
        return "Closed - Converted"
    if person.lead_status in ("UNQUALIFIED", "BAD_TIMING"):
        return "Closed - Not Converted"
    if person.lifecycle_stage in (
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
    ) or person.lead_status in (
        "IN_PROGRESS",
        "ATTEMPTED_TO_CONTACT",
        "CONNECTED",
        "OPEN_DEAL",
    ):
        return "Working - Contacted"
    return "Open - Not Contacted"
