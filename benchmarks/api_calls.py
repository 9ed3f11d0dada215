"""API calls per pass kind and rate-limit use, before (a git revision) and after (this tree), in one run.

Run: .venv/bin/python benchmarks/api_calls.py [--contacts 20000] [--changed 200] [--before 92e40af]
     [--portal-limit 190] [--skip-before]

Both versions sync the same emulated portal (this tree's HubSpot sandbox, in this process, seeded alike,
with activities, limited to ``--portal-limit`` requests per 10 s) with no rate limit in their config. Each
version runs in its own process (its code from ``git archive`` of the revision, or this tree), one pass
per command, and the calls of each pass are counted by the sandbox itself (``/__sandbox/stats``):

1. full: the first pass, no watermark (the list endpoint); its rate is compared with the portal's limit;
2. first after full: ``--changed`` contacts changed (an engagement and page views) after the full sync;
3. the pass after that, with ``--changed`` other contacts changed;
4. steady: two passes with nothing changed (the second is shown);
5. rules change: the grades moved, the cache rescored and what changed written.

Utilisation is calls against the most a rolling window allows in the time taken (limit * (T / 10 s + 1)).
Figures are printed, never asserted: the machine is shared and noisy, compare within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sandbox.hubspot import HubSpotSandboxServer, start_hubspot_sandbox  # noqa: E402

#: the pass kinds in the order they run, with the labels the table prints
PASSES: tuple[tuple[str, str], ...] = (
    ("full", "full sync"),
    ("first", "first pass after the full sync"),
    ("second", "the pass after that"),
    ("steady", "steady (nothing changed)"),
    ("rules", "rules change (rescore from the cache)"),
)

#: the child: builds the pipeline of one code tree and runs one pass per line it reads
DRIVER = r"""
import json, sys
root, url, token, state = sys.argv[1:5]
sys.path.insert(0, root)
from leadsync.app import build_app
from leadsync.config import parse_config

def app_for(scoring):
    config = {
        "crm": "hubspot",
        "hubspot": {"access_token": token, "base_url": url, "max_retries": 10},
        "state": {"url": f"sqlite:///{state}"},
        "sync": {"settle_s": 1},
    }
    if scoring:
        config["scoring"] = scoring
    return build_app(parse_config(config, source="<benchmark>"))

app = app_for(None)
store = app.store()
pipe = app.pipeline(store)
print("RESULT ready", flush=True)
for line in sys.stdin:
    command = json.loads(line)
    if command.get("scoring"):
        pipe = app_for(command["scoring"]).pipeline(store)
    limiter = getattr(pipe.connector, "limiter", None)
    waited = getattr(limiter, "waited_s", 0.0)
    s = pipe.run_once()
    out = {k: getattr(s, k, None) for k in (
        "leads_read", "leads_scored", "leads_written", "own_writes_read_back", "api_calls", "duration_s",
        "leads_rescored", "write_failures", "rate_limit")}
    out["paced_s"] = getattr(limiter, "waited_s", 0.0) - waited
    print("RESULT " + json.dumps(out), flush=True)
store.close()
"""


@contextmanager
def code_tree(revision: str | None) -> Iterator[Path]:
    """This tree (None), or the files of ``revision`` unpacked from ``git archive`` into a temporary folder."""
    if revision is None:
        yield ROOT
        return
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="leadsync-before-") as folder:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder)


class Driver:
    """One version's pipeline in its own process, a pass per :meth:`run`."""

    def __init__(self, root: Path, server: HubSpotSandboxServer, state: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(root), server.url, server.token, str(state)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        if self._line() != "ready":
            raise RuntimeError("the driver did not start")

    def _line(self) -> str:
        """The driver's next answer (its log lines go to the same stdout and are skipped)."""
        out: IO[str] | None = self.process.stdout
        assert out is not None
        while True:
            line = out.readline()
            if not line:
                raise RuntimeError(f"the driver exited ({self.process.wait()})")
            if line.startswith("RESULT "):
                return line.removeprefix("RESULT ").strip()

    def run(self, scoring: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"scoring": scoring}) + "\n")
        self.process.stdin.flush()
        result: dict[str, Any] = json.loads(self._line())
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(60)


def change(server: HubSpotSandboxServer, ids: list[str]) -> None:
    """What a visitor and a rep do: page views on every contact, a logged call on every other one."""
    for n, contact_id in enumerate(ids):
        current = int((server.portal.contact(contact_id) or {}).get("hs_analytics_num_page_views") or 0)
        server.portal.track_engagement(contact_id, {"hs_analytics_num_page_views": str(current + 40)})
        if n % 2 == 0:
            server.portal.add_engagement(contact_id, "call")


def measure(root: Path, args: argparse.Namespace, tmp: Path, name: str) -> dict[str, dict[str, Any]]:
    """Every pass kind of one version, on a fresh portal seeded like the other version's."""
    out: dict[str, dict[str, Any]] = {}
    with start_hubspot_sandbox(
        contacts=args.contacts, seed=21, rate_limit=args.portal_limit, index_lag_s=0.5
    ) as server:
        driver = Driver(root, server, tmp / f"{name}.db")
        rng = random.Random(21)
        pool = server.portal.contact_ids()
        picked = rng.sample(pool, 2 * args.changed)
        try:
            for kind, _label in PASSES:
                if kind == "first":
                    change(server, picked[: args.changed])
                elif kind == "second":
                    change(server, picked[args.changed :])
                elif kind == "steady":
                    driver.run()  # absorbs the previous pass's own write-backs
                time.sleep(1.2)  # past `settle_s`, so that the changes are in this pass's window
                before = server.stats()
                started = time.monotonic()
                summary = driver.run({"grades": {"hot": 65, "warm": 35}} if kind == "rules" else None)
                elapsed = time.monotonic() - started
                after = server.stats()
                calls = after["requests"] - before["requests"]
                out[kind] = {
                    **summary,
                    "calls": calls,
                    "elapsed_s": elapsed,
                    "throttled": after["throttled"] - before["throttled"],
                    "by_endpoint": {
                        k: n - before["by_endpoint"].get(k, 0)
                        for k, n in after["by_endpoint"].items()
                        if n != before["by_endpoint"].get(k, 0)
                    },
                }
        finally:
            driver.close()
    return out


def rate_only(root: Path, contacts: int, portal_limit: int, tmp: Path, name: str) -> dict[str, Any]:
    """A full sync against a portal limited below what this machine's client can do: pacing, not work, bounds it."""
    with start_hubspot_sandbox(contacts=contacts, seed=22, rate_limit=portal_limit) as server:
        driver = Driver(root, server, tmp / f"rate-{name}.db")
        try:
            started = time.monotonic()
            summary = driver.run()
            elapsed = time.monotonic() - started
        finally:
            driver.close()
        stats = server.stats()
    return {**summary, "calls": stats["requests"], "elapsed_s": elapsed, "throttled": stats["throttled"]}


def utilisation(calls: int, elapsed_s: float, limit: int, window_s: float = 10.0) -> float:
    """Calls against the most a rolling window allows in that time: ``limit`` at once, then ``limit`` per
    window (``limit * (T / W + 1)``), so that a short run's first burst does not count as over 1."""
    return calls / (limit * (elapsed_s / window_s + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--changed", type=int, default=200)
    parser.add_argument("--portal-limit", type=int, default=190, help="the portal's requests per 10 s")
    parser.add_argument("--before", default="92e40af", help="the git revision measured as 'before'")
    parser.add_argument("--skip-before", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="also print the calls by endpoint")
    parser.add_argument("--rate-contacts", type=int, default=3_000)
    parser.add_argument("--rate-portal-limit", type=int, default=60, help="a portal limit the client can reach")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if not args.skip_before:
            with code_tree(args.before) as before:
                results[f"before ({args.before})"] = measure(before, args, tmp, "before")
        results["after (this tree)"] = measure(ROOT, args, tmp, "after")
        rates: dict[str, dict[str, Any]] = {}
        if args.rate_contacts:
            if not args.skip_before:
                with code_tree(args.before) as before:
                    rates[f"before ({args.before})"] = rate_only(
                        before, args.rate_contacts, args.rate_portal_limit, tmp, "before"
                    )
            rates["after (this tree)"] = rate_only(ROOT, args.rate_contacts, args.rate_portal_limit, tmp, "after")
    print(
        f"{args.contacts:,} contacts with activities, a portal limited to {args.portal_limit}/10 s, no rate "
        f"limit in the config, {args.changed} contacts changed before each of the two passes after the full sync"
    )
    header = f"{'pass':<40}" + "".join(f"{name:>24}" for name in results)
    print(header)
    for kind, label in PASSES:
        cells = []
        for runs in results.values():
            r = runs[kind]
            cells.append(f"{r['calls']:>6} calls, {r['leads_written'] or 0:>5} written")
        print(f"{label:<40}" + "".join(f"{c:>24}" for c in cells))
    for name, runs in results.items():
        full = runs["full"]
        rate = full["calls"] / full["elapsed_s"]
        paced = full.get("paced_s") or 0.0
        print(
            f"{name}: full sync {full['calls']} calls in {full['elapsed_s']:.1f} s = {rate:.2f} req/s, "
            f"{utilisation(full['calls'], full['elapsed_s'], args.portal_limit):.2f} of the portal's limit "
            f"({paced:.1f} s of it waiting for the client's own "
            f"limiter; the rest is work); 429s {sum(r['throttled'] for r in runs.values())}"
        )
        if full.get("rate_limit"):
            print(f"  limit in force at the end of the full sync: {json.dumps(full['rate_limit'], sort_keys=True)}")
        if args.verbose:
            for kind, _label in PASSES:
                r = runs[kind]
                print(f"  {kind}: 429s {r['throttled']}, {json.dumps(r['by_endpoint'], sort_keys=True)}")

    for name, r in rates.items():
        used = utilisation(r["calls"], r["elapsed_s"], args.rate_portal_limit)
        print(
            f"{name}: full sync of {args.rate_contacts:,} against a portal limited to {args.rate_portal_limit}/10 s: "
            f"{r['calls']} calls in {r['elapsed_s']:.1f} s = {used:.2f} of its limit, "
            f"{r['paced_s']:.1f} s paced by the client, 429s {r['throttled']}"
        )


if __name__ == "__main__":
    main()
