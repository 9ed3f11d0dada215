"""A fork server for tests that start many daemons: import leadsync once, fork one ``leadsync run`` per request.

Importing leadsync (SQLAlchemy, alembic, the HubSpot SDK, numpy) costs seconds of CPU per process; a test
that SIGKILLs twenty daemons would spend most of its time importing. This server pays the imports once and
forks: each child is a separate OS process running the real CLI entry point (``leadsync.cli.main`` with
``run --config ...`` as argv) with its own environment, working directory and output, and it dies to a
SIGKILL like any other process. Nothing is started before the fork (no thread, no connection, no logging
handler), so forking is safe.

Protocol, one JSON object per line::

    stdin  <- {"argv": [...], "env": {...}, "cwd": "...", "out": "/path/to/fifo"}
    stdout -> {"pid": 1234}                      (answer to each request, in order)
    stdout -> {"exited": 1234, "code": 0}        (whenever a child ends; -N: killed by signal N)

Run it as ``python -m tests.daemon._forkserver`` from the repository root. Closing its stdin stops it.
"""

from __future__ import annotations

import json
import os
import random
import select
import sys
import traceback
from typing import Any

import leadsync.cli  # the whole import graph, paid once


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        out = os.open(request["out"], os.O_WRONLY)  # a FIFO the test is already reading
        os.dup2(out, 1)
        os.dup2(out, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        random.seed()  # children must not share the server's random sequence (retry jitter)
        sys.argv = ["leadsync", *request["argv"]]
        try:
            leadsync.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            children.discard(pid)
            continue
        if done:
            children.discard(pid)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            _say({"exited": pid, "code": code})


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    children: set[int] = set()
    pending = b""
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([stdin], [], [], 0.02)
        _reap(children)
        if not ready:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if not line.strip():
                continue
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request)
            children.add(pid)
            _say({"pid": pid})
    while children:  # stdin closed: wait for what is left (the tests kill their daemons themselves)
        _reap(children)
        select.select([], [], [], 0.05)


if __name__ == "__main__":
    main()
