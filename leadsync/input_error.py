"""The one error for a labeled CSV (or ``--rules`` file) a command cannot use; commands exit 2 with it.

Its own module, free of heavy imports, so that ``evaluate`` and ``model`` share it and catch each
other's helpers' errors.
"""

from __future__ import annotations


class InputError(Exception):
    """The input cannot be used; the message names the file, the column and the row or value."""
