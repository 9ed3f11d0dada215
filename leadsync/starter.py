"""The commented starter config ``leadsync init`` writes."""

from __future__ import annotations

HUBSPOT = """\
# leadsync configuration. Secrets stay in the environment: ${NAME} is replaced by $NAME.
crm: hubspot

hubspot:
  # a private app token with crm.objects.contacts.read/write and crm.schemas.contacts.read/write
  access_token: ${HUBSPOT_ACCESS_TOKEN}
  # base_url: https://api.hubapi.com      # point at `leadsync sandbox hubspot` to try things offline
  # rate_limit_per_10s: 100               # a budget never exceeded; unset: follow the portal's own limit
  # rate_limit_margin: 0.1                # share of the portal's limit left to its other apps
  # search_rate_per_s: 5                  # CRM search's own limit
  # workflow_id: 123456                   # optional: also enroll qualified contacts in this workflow

# Which HubSpot property feeds which lead attribute. The defaults cover HubSpot's standard
# properties; list only what you change. Types: str, int, float, bool, datetime, list, range, present.
# mapping:
#   fields:
#     job_title: jobtitle
#     seats: {property: number_of_seats, type: int}

# Scoring rules. Leave this out to use the shipped defaults (see the README's rules guide); a key you
# set here replaces the default's key of the same name (rule lists whole, settings key by key).
# scoring:
#   qualification: {threshold: 60, release: 50}   # MQL at 60, released only below 50 (no flapping)
#   grades: {hot: 70, warm: 40}
#   emails: {competitor_domains: [rivalco.com]}
#   disable: [inactive_90d]                        # switch off a default rule by name

writeback:
  prefix: leadsync_                        # leadsync_score, leadsync_grade, leadsync_qualified_at, ...
  lifecycle_stage: marketingqualifiedlead  # set on qualification, only ever forward; null to leave alone

sync:
  settle_s: 30                             # changes younger than this wait for the next pass (search lags writes)
  overlap_s: 60                            # and the minute before the watermark is read again, to be safe

schedule:                                  # used by `leadsync run`
  sync: {every: 5m, jitter: 20s}
  # full_sync: {cron: "0 3 * * *"}         # optional nightly full read

run:
  port: 9464                               # /healthz, /readyz, /metrics
  shutdown_grace_s: 30                     # SIGTERM: finish the batch in flight, then exit
  lease_ttl_s: 30                          # replicas on one PostgreSQL: the lease a holder renews
  job_lock: true                           # takeover within a second of a crash; false behind PgBouncer

state:
  url: sqlite:///leadsync-state.db         # or postgresql+psycopg://user@host/db
"""

SALESFORCE = """\
# leadsync configuration. Secrets stay in the environment: ${NAME} is replaced by $NAME.
crm: salesforce

salesforce:
  instance_url: https://yourdomain.my.salesforce.com
  login_url: https://yourdomain.my.salesforce.com
  client_id: ${SALESFORCE_CLIENT_ID}
  client_secret: ${SALESFORCE_CLIENT_SECRET}
  # access_token: ${SALESFORCE_ACCESS_TOKEN}   # quick start instead of the client-credentials flow
  mql_status: Working - Contacted

writeback:
  lifecycle_stage: null

state:
  url: sqlite:///leadsync-state.db
"""

TEMPLATES = {"hubspot": HUBSPOT, "salesforce": SALESFORCE}
