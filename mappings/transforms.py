"""Value transforms a mapping declares in YAML (no code): enum maps, computed attributes, defaults.

Computed attributes lean on well-kept data instead of hand lists: country names and codes come from ISO 3166
through ``pycountry`` (names, official names, common names, alpha-2 and alpha-3 codes, and its fuzzy search
for spellings such as "Russia"), plus the everyday "UK" and "USA".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Literal, get_args

TCompute = Literal["country_code", "country_name", "lower", "upper", "strip"]
COMPUTES: tuple[str, ...] = get_args(TCompute)

#: everyday names and codes ISO 3166 does not list under these spellings
_COUNTRY_ALIASES = {"uk": "GB", "england": "GB", "scotland": "GB", "wales": "GB", "usa": "US", "u.s.": "US"}


def normal_key(value: Any) -> str:
    """How enum-map keys and CRM values are compared: case, surrounding and repeated spaces do not count."""
    return " ".join(str(value).split()).casefold()


@cache
def _country(text: str) -> Any | None:
    """The pycountry record of a country name or code; None when ISO 3166 does not know it."""
    import pycountry  # loaded on first use: most mappings never compute a country

    key = normal_key(text)
    if not key:
        return None
    if key in _COUNTRY_ALIASES:
        return pycountry.countries.get(alpha_2=_COUNTRY_ALIASES[key])
    found: Any
    try:
        found = pycountry.countries.lookup(key)  # codes, names, official and common names
    except LookupError:
        try:
            matches = pycountry.countries.search_fuzzy(key)
        except LookupError:
            return None
        found = matches[0] if len(matches) == 1 else None
    return found


def country_code(text: str) -> str | None:
    """ISO 3166-1 alpha-2 code ("Germany", "DEU", "de" -> "DE"); None for text that names no country."""
    found = _country(text)
    return str(found.alpha_2) if found is not None else None


def country_name(text: str) -> str | None:
    """ISO 3166 short name ("DE", "deutschland" -> "Germany"); None for text that names no country."""
    found = _country(text)
    return str(getattr(found, "common_name", None) or found.name) if found is not None else None


COMPUTE: dict[str, Callable[[str], str | None]] = {
    "country_code": country_code,
    "country_name": country_name,
    "lower": lambda t: t.strip().lower(),
    "upper": lambda t: t.strip().upper(),
    "strip": lambda t: " ".join(t.split()),
}


def normal_table(table: Mapping[str, Any]) -> dict[str, Any]:
    """An enum map keyed by :func:`normal_key`, built once per mapping."""
    return {normal_key(source): target for source, target in table.items()}


def apply_map(text: str, table: Mapping[str, Any], other: Any, keep_other: bool) -> Any:
    """The value of ``text`` in a :func:`normal_table`; a value not in it is kept as it is, or becomes
    ``other``."""
    key = normal_key(text)
    if key in table:
        return table[key]
    return text if keep_other else other
