"""The reader thread keeps the plain iterator's order, errors and early stop."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from sync.prefetch import prefetched

RUN: contextvars.ContextVar[str] = contextvars.ContextVar("RUN", default="none")


class Pages:
    """Pages 0..n-1, recording which were read and from which thread; fails at ``fail_at``."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.read: list[int] = []
        self.threads: set[str] = set()
        self.contexts: set[str] = set()
        self.closed = False

    def __iter__(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise ValueError(f"corrupt page {i}")
                self.read.append(i)
                self.threads.add(threading.current_thread().name)
                self.contexts.add(RUN.get())
                yield i
        finally:
            self.closed = True


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_pages_arrive_in_order_and_all(depth: int) -> None:
    pages = Pages(50)
    assert list(prefetched(iter(pages), depth=depth)) == list(range(50))
    assert pages.closed


def test_reads_happen_on_the_reader_thread_with_the_callers_context() -> None:
    pages = Pages(3)
    RUN.set("run-7")
    assert list(prefetched(iter(pages), depth=2, name="reader-x")) == [0, 1, 2]
    assert pages.threads == {"reader-x"}
    assert pages.contexts == {"run-7"}


def test_an_error_is_raised_where_its_page_would_have_been() -> None:
    pages = Pages(10, fail_at=4)
    got: list[int] = []
    with pytest.raises(ValueError, match="corrupt page 4"):
        for page in prefetched(iter(pages), depth=3):
            got.append(page)
    assert got == [0, 1, 2, 3]


def test_closing_early_stops_the_reader_within_depth_pages() -> None:
    pages = Pages(1000)
    with closing(prefetched(iter(pages), depth=2)) as it:
        for page in it:
            if page == 3:
                break
    # the consumer took 0..3; the reader may hold at most `depth` more in the queue plus one in hand
    assert pages.read[-1] <= 3 + 2 + 1
    assert pages.closed


def test_the_next_page_is_read_while_this_one_is_processed() -> None:
    pages = Pages(5)
    for page in prefetched(iter(pages), depth=2):
        if page == 0:
            deadline = time.monotonic() + 10
            while 1 not in pages.read and time.monotonic() < deadline:
                time.sleep(0.005)
            assert 1 in pages.read, "page 1 was not read while page 0 was being processed"


def test_depth_zero_reads_in_turn() -> None:
    pages = Pages(3)
    for page in prefetched(iter(pages), depth=0):
        assert pages.read[-1] == page
    assert pages.threads == {threading.current_thread().name}
