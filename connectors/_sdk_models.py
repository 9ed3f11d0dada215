"""Request bodies of the HubSpot SDK's generated models, built without a configuration copy per object.

Each generated model's ``__init__`` deep-copies its package's default ``Configuration`` when none is given:
a 3,000-contact pass built 15,000 association-request objects and spent 4 s of CPU in those copies alone,
which made the full sync CPU-bound below the portal's rate limit. The models use the configuration only to
decide whether to validate fields on assignment, so one shared instance per API package serves them all.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, TypeVar

T = TypeVar("T")


@functools.cache
def _configuration(package: str) -> Any:
    """The one ``Configuration`` of an SDK API package (e.g. ``hubspot.crm.associations.v4``)."""
    return importlib.import_module(f"{package}.configuration").Configuration()


def sdk_model(model: type[T], /, **fields: Any) -> T:
    """``model(**fields)`` sharing its package's configuration instead of copying it."""
    package = model.__module__.rsplit(".models.", 1)[0]
    return model(**fields, local_vars_configuration=_configuration(package))
