"""Running ``leadsync run`` as real subprocesses against in-process sandboxes, and judging the CRM afterwards.

Every daemon gets port 0 (the port it bound is read from its ``daemon.listening`` log line), its own config
file and state in the test's tmp dir, so tests stay parallel-safe. The CRM-side helpers (config section,
seeding, the CRM's final state, its workflow triggers, the write log, the reference run) take either
sandbox, HubSpot or Salesforce, and do the CRM's own thing.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer
from connectors.sandbox.synthetic import SyntheticPerson
from leadsync.app import build_app
from leadsync.config import parse_config
from sync.lease import lease_name
from sync.state import StateStore

Sandbox = HubSpotSandboxServer | SalesforceSandboxServer

REPO = Path(__file__).resolve().parents[2]
#: scores are computed at this instant in every daemon of these tests (LEADSYNC_SCORING_NOW), so that a run
#: interrupted twenty times and a reference run made seconds later give identical CRM states
SCORING_NOW = datetime(2025, 3, 1, tzinfo=UTC)
WORKFLOW_ID = 4242
WRITTEN_PROPS = (
    "leadsync_score",
    "leadsync_fit",
    "leadsync_engagement",
    "leadsync_grade",
    "leadsync_reasons",
    "leadsync_qualified_at",
    "leadsync_rules_version",
    "lifecyclestage",
)
#: what leadsync writes on a Salesforce Lead or Contact (a Lead's Status too, see SF_LEAD_PROPS)
SF_WRITTEN_FIELDS = (
    "Leadsync_Score__c",
    "Leadsync_Fit__c",
    "Leadsync_Engagement__c",
    "Leadsync_Grade__c",
    "Leadsync_Reasons__c",
    "Leadsync_Qualified_At__c",
    "Leadsync_Rules_Version__c",
)
SF_LEAD_PROPS = (*SF_WRITTEN_FIELDS, "Status")
#: the autolaunched Flow the Salesforce daemons launch once per qualification (the sandbox has it)
SF_FLOW = "Leadsync_Qualified"
#: scoring overrides by CRM: a synthetic Salesforce org carries less engagement than a HubSpot portal (tasks,
#: events and campaigns, no page views), so at the default MQL threshold (60) hardly anyone qualifies and no
#: Flow would ever run; at 30 about one record in seven does
SCORING: dict[str, dict[str, Any]] = {"salesforce": {"qualification": {"threshold": 30, "release": 20}}}
#: the property that says a record was scored, by CRM
SCORE_PROP = {"hubspot": "leadsync_score", "salesforce": "Leadsync_Score__c"}


def crm_of(server: Sandbox) -> str:
    return "salesforce" if isinstance(server, SalesforceSandboxServer) else "hubspot"


def job_lease(server: Sandbox) -> str:
    """The name of the job lease a daemon on this CRM holds (``sync:<crm>:<object type>s``)."""
    return lease_name("salesforce:leads" if crm_of(server) == "salesforce" else "hubspot:contacts")


def crm_section(server: Sandbox, *, secrets_in_env: bool = True) -> dict[str, Any]:
    """The config's ``hubspot:`` / ``salesforce:`` section for the sandbox, triggers on (a workflow or a Flow).

    With ``secrets_in_env`` the token or client secret stays in the environment (``${...}``, see
    :func:`daemon_env`); else it is written in (an in-process run).
    """
    if isinstance(server, SalesforceSandboxServer):
        return {
            "login_url": server.url,
            "client_id": server.client_id,
            "client_secret": "${SF_CLIENT_SECRET}" if secrets_in_env else server.client_secret,
            "ca_file": server.ca_pem_path,
            "flow_api_name": SF_FLOW,
            "rate_limit_per_10s": 5000,
        }
    return {
        "access_token": "${HUBSPOT_TOKEN}" if secrets_in_env else server.token,
        "base_url": server.url,
        "workflow_id": WORKFLOW_ID,
        "rate_limit_per_10s": 5000,  # the sandbox sets no limit; the client-side limiter must not pace tests
        "search_rate_per_s": 500,
    }


def daemon_config(
    path: Path,
    server: Sandbox,
    state_url: str,
    *,
    every: str = "1s",
    lease_ttl_s: float = 3,
    shutdown_grace_s: float = 10,
    hubspot: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A daemon config for the sandbox: the secret stays in the environment (``${HUBSPOT_TOKEN}``,
    ``${SF_CLIENT_SECRET}``). ``hubspot`` overrides keys of the CRM's section (either CRM)."""
    crm = crm_of(server)
    config: dict[str, Any] = {
        "crm": crm,
        crm: crm_section(server) | (hubspot or {}),
        **({"scoring": SCORING[crm]} if crm in SCORING else {}),
        # the in-process sandbox indexes writes at once: nothing to settle, no overlap to re-read
        "sync": {"settle_s": 0, "overlap_s": 0},
        "schedule": {"sync": {"every": every}},
        "run": {
            "host": "127.0.0.1",
            "port": 0,
            "lease_ttl_s": lease_ttl_s,
            "shutdown_grace_s": shutdown_grace_s,
            "probe_interval_s": 1,
        },
        "state": {"url": state_url},
        **(extra or {}),
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def daemon_env(server: Sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSYNC_")}
    if isinstance(server, SalesforceSandboxServer):
        env["SF_CLIENT_SECRET"] = server.client_secret
    else:
        env["HUBSPOT_TOKEN"] = server.token
    env |= {
        "LEADSYNC_SCORING_NOW": SCORING_NOW.isoformat(),
        "PYTHONUNBUFFERED": "1",
    }
    return env


class ForkedProc:
    """A daemon forked by the fork server: the subset of ``subprocess.Popen`` the tests use."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server = server
        self.pid = pid

    def poll(self) -> int | None:
        return self.server.exit_codes.get(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.server.exited:
            while self.pid not in self.server.exit_codes:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
                self.server.exited.wait(remaining)
            return self.server.exit_codes[self.pid]

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """Starts ``tests.daemon._forkserver`` and forks daemons from it (see there for why)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.daemon._forkserver"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.exit_codes: dict[int, int] = {}
        self.exited = threading.Condition()
        self._pids: queue.Queue[int] = queue.Queue()
        self._children: list[ForkedProc] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "pid" in message:
                self._pids.put(int(message["pid"]))
            elif "exited" in message:
                with self.exited:
                    self.exit_codes[int(message["exited"])] = int(message["code"])
                    self.exited.notify_all()

    def spawn(self, argv: Sequence[str], env: dict[str, str], cwd: Path, out: Path) -> ForkedProc:
        assert self.proc.stdin is not None
        request = {"argv": list(argv), "env": env, "cwd": str(cwd), "out": str(out)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        child = ForkedProc(self, self._pids.get(timeout=60))
        self._children.append(child)
        return child

    def close(self) -> None:
        for child in self._children:
            child.kill()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class DaemonProcess:
    """One ``leadsync run`` process; what it writes (JSON log lines) is collected by a reader thread.

    Started with ``python -m leadsync run ...``, or forked from a :class:`ForkServer` when one is given.
    """

    config: Path
    env: dict[str, str]
    #: None: the daemon's own default (info)
    log_level: str | None = "debug"
    name: str = "daemon"
    forkserver: ForkServer | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    started_at: float = 0.0

    def __post_init__(self) -> None:
        self._arrived: queue.Queue[None] = queue.Queue()
        self._lock = threading.Lock()
        self.started_at = time.monotonic()
        argv = [*(["--log-level", self.log_level] if self.log_level else []), "run", "--config", str(self.config)]
        self.proc: subprocess.Popen[str] | ForkedProc
        if self.forkserver is not None:
            fifo = self.config.parent / f"{self.name}.out"
            os.mkfifo(fifo)
            reader = threading.Thread(target=self._read_fifo, args=(fifo,), daemon=True)
            reader.start()
            self._readers = [reader]
            self.proc = self.forkserver.spawn(argv, self.env, self.config.parent, fifo)
            return
        popen = subprocess.Popen(
            [sys.executable, "-m", "leadsync", *argv],
            cwd=self.config.parent,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.proc = popen
        self._readers = [
            threading.Thread(target=self._read, args=(popen.stderr,), daemon=True),
            threading.Thread(target=self._read, args=(popen.stdout,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_fifo(self, fifo: Path) -> None:
        with open(fifo, encoding="utf-8", errors="replace") as stream:  # blocks until the child opens it
            self._read(stream)

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._lock:
                self.raw.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"event": "<not json>", "line": line}
                if not isinstance(event, dict):
                    event = {"event": "<not json>", "line": line}
                event["_t"] = time.monotonic()
                self.events.append(event)
            self._arrived.put(None)

    # ---- what it said ------------------------------------------------------------------------------

    def find(self, match: Callable[[dict[str, Any]], bool], start: int = 0) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            for i in range(start, len(self.events)):
                if match(self.events[i]):
                    return i, self.events[i]
        return None

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0
    ) -> tuple[int, dict[str, Any]] | None:
        """The first event from index ``start`` on that matches, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(match, start)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self._drained()):
                return None
            with contextlib.suppress(queue.Empty):
                self._arrived.get(timeout=min(remaining, 0.05))

    def _drained(self) -> bool:
        return not any(r.is_alive() for r in self._readers)

    def count(self, event: str) -> int:
        with self._lock:
            return sum(1 for e in self.events if e.get("event") == event)

    @property
    def replica(self) -> str | None:
        found = self.find(lambda e: e.get("event") == "daemon.listening")
        return found[1]["replica"] if found else None

    @property
    def port(self) -> int | None:
        found = self.find(lambda e: e.get("event") == "daemon.listening")
        return int(found[1]["port"]) if found else None

    def text(self) -> str:
        with self._lock:
            return "".join(self.raw)

    # ---- control -----------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release, no last log line."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.join_readers()

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        self.join_readers()
        return code

    def join_readers(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        """An HTTP GET on the daemon's endpoints: (status, body)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def event_is(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


def stop_all(daemons: Iterable[DaemonProcess]) -> None:
    for d in daemons:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def holder_of(pool: Sequence[DaemonProcess], store: StateStore, timeout: float, lease: str) -> DaemonProcess:
    """The live daemon holding the job lease ``lease`` (waits for a takeover after a kill)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = store.lease_holder(lease)
        if held is not None:
            for daemon in pool:
                if daemon.proc.poll() is None and daemon.replica == held[0]:
                    return daemon
        time.sleep(0.05)
    logs = "\n".join(d.text()[-3000:] for d in pool)
    raise AssertionError(f"no live daemon took the lease within {timeout}s\n{logs}")


def passes(daemon: DaemonProcess, end_at: float | None = None) -> list[tuple[float, float]]:
    """(start, end) of every pass the daemon ran, in monotonic time; a pass cut by a kill ends at ``end_at``."""
    spans, start = [], None
    for event in daemon.events:
        if event.get("event") == "sync.start":
            start = event["_t"]
        elif event.get("event") in ("sync.done", "sync.stopped", "sync.failed") and start is not None:
            spans.append((start, event["_t"]))
            start = None
    if start is not None:
        spans.append((start, end_at if end_at is not None else time.monotonic()))
    return spans


# ---- the CRM side --------------------------------------------------------------------------------------

Update = tuple[str, tuple[tuple[str, str], ...]]


class WriteLog:
    """Records every record update the sandbox applies (wraps HubSpot's batch_update or Salesforce's
    sObject Collections update in-process)."""

    def __init__(self, server: Sandbox) -> None:
        self.updates: list[Update] = []
        if isinstance(server, SalesforceSandboxServer):
            org = server.org
            update_collection = org.update_collection

            def recording_collection(records: Any, *, all_or_none: bool) -> Any:
                results = update_collection(records, all_or_none=all_or_none)
                for item, result in zip(records, results, strict=False):
                    if result.get("success"):
                        values = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
                        self.updates.append(
                            (str(result.get("id")), tuple(sorted((k, str(v)) for k, v in values.items())))
                        )
                return results

            org.update_collection = recording_collection  # type: ignore[method-assign]
            return
        portal = server.portal
        original = portal.batch_update

        def recording(inputs: Sequence[Any]) -> Any:
            done, errors = original(inputs)
            for contact, item in done:
                props = tuple(sorted((str(k), str(v)) for k, v in (item.get("properties") or {}).items()))
                self.updates.append((str(contact.id), props))
            return done, errors

        portal.batch_update = recording  # type: ignore[method-assign]

    def repeated(self) -> dict[Update, int]:
        """Identical writes (same record, same values) sent more than once."""
        return {k: n for k, n in Counter(self.updates).items() if n > 1}


def seed(server: Sandbox, people: Sequence[SyntheticPerson]) -> list[str]:
    """Add people as records that look freshly changed (an incremental window sees them).

    On Salesforce every other person becomes a Lead (a converted one also its Contact), the others Contacts,
    so that both objects are synced; the same people in the same order give the same ids in any org.
    """
    if isinstance(server, SalesforceSandboxServer):
        org = server.org
        contacts_before = set(org.ids("Contact"))
        lead_ids = org.seed_people(people[::2], as_leads=True)
        org.seed_people(people[1::2], as_leads=False)
        contact_ids = sorted(set(org.ids("Contact")) - contacts_before)
        org.touch("Lead", lead_ids)
        org.touch("Contact", contact_ids)
        return [*lead_ids, *contact_ids]
    ids = server.portal.seed_people(people)
    server.portal.bulk_stamp(ids)
    return ids


def crm_state(server: Sandbox) -> dict[str, dict[str, str]]:
    """Every record's leadsync-written properties, by id (Salesforce: open Leads and Contacts)."""
    state: dict[str, dict[str, str]] = {}
    if isinstance(server, SalesforceSandboxServer):
        for sobject, fields in (("Lead", SF_LEAD_PROPS), ("Contact", SF_WRITTEN_FIELDS)):
            for record in server.org.records(sobject):
                if record.get("IsConverted"):
                    continue  # read-only: scored as its Contact
                state[str(record["Id"])] = {k: "" if record.get(k) is None else str(record[k]) for k in fields}
        return state
    for contact_id in server.portal.contact_ids():
        props = server.portal.contact(contact_id) or {}
        state[str(contact_id)] = {k: props.get(k) or "" for k in WRITTEN_PROPS}
    return state


def everyone_scored(server: Sandbox) -> bool:
    prop = SCORE_PROP[crm_of(server)]
    return all(row[prop] for row in crm_state(server).values())


def enrollments(server: HubSpotSandboxServer) -> Counter[str]:
    """Enrollments per contact id (exactly-once means every count is 1)."""
    return Counter(e["contactId"] for e in server.portal.enrollments())


def triggers(server: Sandbox) -> Counter[str]:
    """Workflow triggers the CRM received per record: HubSpot enrollments, Salesforce Flow interviews."""
    if isinstance(server, SalesforceSandboxServer):
        return Counter(str(c["inputs"].get("recordId")) for c in server.org.flow_invocations(SF_FLOW))
    return enrollments(server)


def on_trigger(server: Sandbox, hook: Callable[[], None]) -> None:
    """Call ``hook`` in the sandbox after it records a trigger and before it answers (to kill the caller
    during an outbox delivery the CRM has already received)."""
    if isinstance(server, SalesforceSandboxServer):
        org = server.org
        invoke_flow = org.invoke_flow

        def invoking(flow: str, inputs: Any) -> list[dict[str, Any]]:
            results = invoke_flow(flow, inputs)
            hook()
            return results

        org.invoke_flow = invoking  # type: ignore[method-assign]
        return
    portal = server.portal
    record_enrollment = portal.record_enrollment

    def enrolling(workflow_id: str, email: str) -> dict[str, Any]:
        entry = record_enrollment(workflow_id, email)
        hook()
        return entry

    portal.record_enrollment = enrolling  # type: ignore[method-assign]


def reference_run(server: Sandbox, state_url: str, passes: int = 2) -> None:
    """An uninterrupted in-process run with the daemon's settings and pinned scoring clock."""
    crm = crm_of(server)
    config = parse_config(
        {
            "crm": crm,
            crm: crm_section(server, secrets_in_env=False),
            **({"scoring": SCORING[crm]} if crm in SCORING else {}),
            "sync": {"settle_s": 0, "overlap_s": 0},
            "state": {"url": state_url},
        },
        source="<reference>",
    )
    app = build_app(config)
    store = app.store()
    try:
        pipeline = app.pipeline(store)
        pipeline.scoring_clock = lambda: SCORING_NOW
        for _ in range(passes):
            pipeline.run_once()
    finally:
        store.close()


def open_store(url: str) -> StateStore:
    return StateStore(url)
