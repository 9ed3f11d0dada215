"""Seeding an org with synthetic people: leads or contacts with accounts, owners, campaign history and deals.

Deals follow the synthetic person's outcome, itself drawn from its hidden propensity: a customer has a won
Opportunity closing on ``customer_at`` (a converted Lead points to it through ``ConvertedOpportunityId``),
with its contact as primary OpportunityContactRole; a share of the other contacts, growing with propensity,
has an open or a lost one. The draws use their own seeded RNG per person, so adding deals moves nothing else.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from connectors.sandbox._server import (
    gc_paused,
)
from connectors.sandbox.salesforce import soql
from connectors.sandbox.salesforce.schema import OPPORTUNITY_STAGES
from connectors.sandbox.salesforce.store import (
    _INDUSTRY_MAP,
    _SALES_REPS,
    OrgStore,
    _Person,
)
from connectors.sandbox.synthetic import SyntheticPerson

_LEAD_SOURCES_NO_FORM = ("Phone Inquiry", "Partner Referral", "Purchased List", "Other", None)
_OPEN_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote")
_BUYER_ROLES = ("Decision Maker", "Economic Buyer", "Executive Sponsor", "Technical Buyer")


class SeedingOrg(OrgStore):
    """``seed_people``: synthetic people as Lead or Contact records (their activities follow lazily)."""

    def seed_people(self, people: Iterable[SyntheticPerson], *, as_leads: bool = True) -> list[str]:
        """Add synthetic people as Leads (converted ones also get their Contact and Account) or as Contacts.

        Returns the ids of the Leads (``as_leads``) or Contacts created. Activities (Task, Event,
        CampaignMember) are derived from ``person.events()`` when one of those objects is first read.
        """
        created_ids: list[str] = []
        with self.lock, gc_paused():
            names = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole")
            tables = [self.tables[name] for name in names]
            before = [len(table.rows) for table in tables]
            for person in people:
                created_ids.append(self._seed_person(person, as_lead=as_leads))
            for table, count in zip(tables, before, strict=True):
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
        opportunity_id = self._seed_deal(person, contact_id, account_id, owner, converted_at, as_lead=as_lead)
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
                    "ConvertedOpportunityId": opportunity_id if person.converted else None,
                },
                index=False,
            )
        self._people.append(_Person(len(self._people), person, lead_id, contact_id, account_id, owner))
        return lead_id if as_lead else contact_id  # type: ignore[return-value]

    def _seed_deal(
        self,
        person: SyntheticPerson,
        contact_id: str | None,
        account_id: str | None,
        owner: str,
        converted_at: str | None,
        *,
        as_lead: bool,
    ) -> str | None:
        """The person's Opportunity and contact role, if any: won for a customer; for another contact open
        or lost with a probability growing with its propensity (a Lead without a Contact has no deal)."""
        if contact_id is None:
            return None
        rng = random.Random(f"salesforce-deals:{self.seed}:{person.index}")
        if person.converted and person.customer_at is not None and converted_at is not None:
            stage, close = "Closed Won", person.customer_at
            # a converted Lead's opportunity is born at conversion; a contact's after a sales cycle
            cycle = timedelta(days=rng.randint(14, 90))
            opened = person.customer_at if as_lead else max(person.created_at, close - cycle)
            stamp = converted_at
        elif rng.random() < 0.05 + 0.5 * person.propensity:
            opened = person.created_at + (person.updated_at - person.created_at) * rng.random()
            if rng.random() < 0.6:
                stage, close = "Closed Lost", min(self.anchor, opened + timedelta(days=rng.randint(14, 120)))
            else:
                stage, close = rng.choice(_OPEN_STAGES), self.anchor + timedelta(days=rng.randint(7, 120))
            stamp = soql.normalize_datetime(min(close, self.anchor) if stage == "Closed Lost" else opened)
        else:
            return None
        return self._insert_deal(person, contact_id, account_id, owner, stage, opened, close, stamp, rng)

    def _insert_deal(
        self,
        person: SyntheticPerson,
        contact_id: str,
        account_id: str | None,
        owner: str,
        stage: str,
        opened: datetime,
        close: datetime,
        stamp: str,
        rng: random.Random,
    ) -> str:
        created = soql.normalize_datetime(opened)
        stamp = max(stamp, created)
        audit = {
            "IsDeleted": False,
            "CreatedDate": created,
            "CreatedById": self._users[0],
            "LastModifiedDate": stamp,
            "LastModifiedById": self._users[0],
            "SystemModstamp": stamp,
        }
        opportunities = self.tables["Opportunity"]
        probability, closed, won = OPPORTUNITY_STAGES[stage]
        seats = max(1, min(500, (person.employees or 20) // 10))
        opportunity_id = self.new_id("Opportunity")
        opportunities.insert(
            opportunities.make_row(
                {
                    **audit,
                    "Id": opportunity_id,
                    "AccountId": account_id,
                    "Name": f"{person.company or person.last_name or 'Deal'} - {seats} seats",
                    "StageName": stage,
                    "CloseDate": soql.normalize_datetime(close)[:10],
                    "Amount": float(seats * rng.choice((240, 360, 480))),
                    "Probability": float(probability),
                    "IsClosed": closed,
                    "IsWon": won,
                    "Type": "New Business",
                    "LeadSource": "Web" if person.form_submissions else None,
                    "OwnerId": owner,
                }
            ),
            index=False,
        )
        roles = self.tables["OpportunityContactRole"]
        roles.insert(
            roles.make_row(
                {
                    **audit,
                    "Id": self.new_id("OpportunityContactRole"),
                    "OpportunityId": opportunity_id,
                    "ContactId": contact_id,
                    "Role": rng.choice(_BUYER_ROLES),
                    "IsPrimary": True,
                }
            ),
            index=False,
        )
        return opportunity_id


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
