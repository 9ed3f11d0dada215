"""Errors of the mappings package."""

from __future__ import annotations


class MappingError(Exception):
    """The mapping (or a CRM value it reads) is wrong; the message names where and what is expected."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")
