"""Hostile input, measured (issue 14 items 3 and 4): how long leadsync takes to refuse it, and what it costs.

Each case runs in a fresh process (``leadsync score``/``check``, or a short Python snippet for the CRM
records), and the wall time of the process and its peak RSS (``wait4``) are printed, beside the same command
on a clean input of the same shape, so that the difference is what the hostile part costs:

- YAML: a "billion laughs" alias bomb (9**9 strings if expanded), 10,000 levels of nesting, a 3 MB file,
  each given as the config of ``leadsync score`` (refused with one line, exit 2);
- CSV: a 100 MB single line among 1,000 good rows (rejected on its own, exit 1), and the same rows alone;
- CRM: a HubSpot sandbox page whose first record carries a 50 MB job title (refused, the pass partial),
  and the same pass without the fault.

Process start-up (imports) is in every figure; the clean case shows it. On a shared machine run it twice.

Usage: ``python benchmarks/hostile_input.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEADSYNC = [sys.executable, "-m", "leadsync"]

CRM_PASS = """
import sys
from connectors.sandbox.hubspot import start_hubspot_sandbox
from leadsync.app import build_app
from leadsync.config import parse_config
server = start_hubspot_sandbox(contacts=200, seed=4)
if sys.argv[1] == "huge":
    server.sandbox.faults.schedule("huge", "GET /crm/v3/objects/contacts", nth=1)
config = parse_config({"crm": "hubspot", "hubspot": {"access_token": server.token, "base_url": server.url,
    "read_activities": False}, "state": {"url": "sqlite:///" + sys.argv[2]}, "sync": {"settle_s": 0}}, source="<b>")
app = build_app(config)
store = app.store()
summary = app.pipeline(store).run_once(full=True)
print(store.last_runs(1)[0].status, summary.records_refused, summary.leads_scored)
store.close()
server.stop()
"""


def run(args: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS in MB, exit code, last line of output) of one process."""
    started = time.monotonic()
    process = subprocess.Popen(
        args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert process.stdout is not None
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), (lines[-1] if lines else "")[:110]


def alias_bomb(levels: int) -> str:
    lines = ["crm: hubspot", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"scoring: {{fit: *a{levels}}}", ""])


def halves() -> tuple[range, range]:
    return range(500), range(500, 1000)


def refusal_time(path: Path) -> float:
    """Seconds ``load_config`` takes to refuse ``path``, in this process (no start-up in the figure)."""
    from leadsync.config import ConfigError, load_config

    started = time.perf_counter()
    try:
        load_config(path)
    except ConfigError:
        return time.perf_counter() - started
    raise SystemExit(f"{path} was not refused")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        first, second = (b"".join(f"p{i}@acme{i}.com,VP Sales,Acme {i}\n".encode() for i in r) for r in halves())
        clean = folder / "clean.csv"
        clean.write_bytes(b"email,jobtitle,company\n" + first + second)
        long_line = folder / "long.csv"
        with long_line.open("wb") as handle:
            handle.write(b"email,jobtitle,company\n" + first + b"x@acme.com,")
            for _ in range(100):
                handle.write(b"x" * (1 << 20))
            handle.write(b",Acme\n" + second)
        configs = {
            "clean config": "crm: hubspot\n",
            "alias bomb (9 levels)": alias_bomb(9),
            "10,000 levels of nesting": "crm: hubspot\nscoring:\n  x: " + "[" * 10_000 + "]" * 10_000 + "\n",
            "3 MB file": "crm: hubspot\nx: '" + "a" * (3 << 20) + "'\n",
        }
        cases: list[tuple[str, list[str]]] = []
        refused: list[tuple[str, float]] = []
        for name, text in configs.items():
            path = folder / f"{len(cases)}.yaml"
            path.write_text(text)
            if name != "clean config":
                refused.append((name, refusal_time(path)))
            cases.append(
                (f"YAML {name}", [*LEADSYNC, "score", "-i", str(clean), "-o", "/dev/null", "--config", str(path)])
            )
        cases.append(("CSV 1,000 rows", [*LEADSYNC, "score", "-i", str(clean), "-o", "/dev/null"]))
        cases.append(("CSV 1,000 rows + a 100 MB line", [*LEADSYNC, "score", "-i", str(long_line), "-o", "/dev/null"]))
        snippet = folder / "crm_pass.py"
        snippet.write_text(CRM_PASS)
        for kind in ("clean", "huge"):
            label = "CRM pass, 200 contacts" + (", one with a 50 MB title" if kind == "huge" else "")
            cases.append((label, [sys.executable, str(snippet), kind, str(folder / f"{kind}.db")]))
        for name, seconds in refused:
            print(f"YAML {name}: refused by load_config in {seconds * 1000:.0f} ms")
        print(f"{'case':<48} {'wall s':>7} {'peak MB':>8} {'exit':>5}  last line")
        for name, args in cases:
            wall, peak, code, last = run(args, folder)
            print(f"{name:<48} {wall:7.2f} {peak:8.0f} {code:5d}  {last}")


if __name__ == "__main__":
    main()
