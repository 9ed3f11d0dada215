"""``leadsync sandbox hubspot|salesforce``: run a local CRM emulator in the foreground (for trying leadsync
and for tests). May import connectors.sandbox (lazily, per command) and the CLI's shared helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from leadsync.cli import fail, out, shared_options

sandbox_app = typer.Typer(help="Run a local CRM emulator (for trying leadsync and for tests).", no_args_is_help=True)

FaultKindsOption = Annotated[
    str | None,
    typer.Option(
        "--fault-kinds",
        help="Comma-separated kinds --fault-rate draws from: 500, 502, 503, slow, drop, corrupt (a truncated "
        "200 body), html (a gateway's 200 text/html page), drip (the body at 64 bytes/s), stall (half the body, "
        "then silence for 60 s), and in the first record of a page: huge (a 50 MB title), enum (an enumeration "
        "value that is no option), idtype (the id as a JSON number). Default: 500..drop.",
    ),
]
FaultAtOption = Annotated[
    list[str] | None,
    typer.Option(
        "--fault-at",
        help="KIND:N[+][:METHOD /path]: the Nth request (N+: and every later one) to that endpoint gets KIND, "
        "e.g. 'corrupt:2:GET /crm/v3/objects/contacts'. Repeatable.",
    ),
]


def _sandbox_faults(kinds: str | None, rules: list[str] | None) -> tuple[dict[str, Any], list[Any]]:
    """``--fault-kinds`` and ``--fault-at`` checked up front (exit 2 naming the bad one)."""
    from connectors.sandbox._server import parse_fault_kinds, parse_fault_rule

    try:
        chosen = {"fault_kinds": parse_fault_kinds(kinds)} if kinds is not None else {}
        return chosen, [parse_fault_rule(r) for r in rules or []]
    except ValueError as exc:
        fail(f"--fault-kinds/--fault-at: {exc}", 2)


WebhookUrlOption = Annotated[
    str | None,
    typer.Option(
        "--webhook-url", help="Post signed change notifications here (e.g. http://127.0.0.1:9464/webhooks/hubspot)."
    ),
]
WebhookSecretOption = Annotated[
    str,
    typer.Option(
        "--webhook-secret",
        envvar="SANDBOX_WEBHOOK_SECRET",
        help="Secret the notifications are signed / authenticated with (or $SANDBOX_WEBHOOK_SECRET).",
    ),
]


RateLimitOption = Annotated[str | None, typer.Option("--rate-limit", help="e.g. 100/10s (default: off).")]
FaultRateOption = Annotated[float, typer.Option("--fault-rate", help="Share of requests that fail (0..1).")]


@dataclass(frozen=True)
class SandboxTraffic:
    """What both emulators do to the requests they answer: a rate limit and injected faults."""

    rate_limit: RateLimitOption = None
    fault_rate: FaultRateOption = 0.0
    fault_kinds: FaultKindsOption = None
    fault_at: FaultAtOption = None


def _run_sandbox(
    serve: Callable[..., None],
    banner: Callable[[Any], list[str]],
    traffic: SandboxTraffic,
    *,
    port: int,
    **settings: Any,
) -> None:
    """What both emulator commands share: faults checked up front, the banner once listening, clean exits."""
    fault_rate = traffic.fault_rate
    if not 0 <= fault_rate <= 1:
        fail(f"--fault-rate: expected a share between 0 and 1, got {fault_rate}", 2)
    kinds, rules = _sandbox_faults(traffic.fault_kinds, traffic.fault_at)

    def ready(server: Any) -> None:
        for rule in rules:
            server.app.faults.schedule(rule)
        for line in banner(server):
            out.print(line, highlight=False)
        out.print("Ctrl-C to stop", style="dim")
        sys.stdout.flush()

    try:
        serve(on_ready=ready, port=port, rate_limit=traffic.rate_limit, fault_rate=fault_rate, **kinds, **settings)
    except ValueError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}", 1)


@sandbox_app.command("hubspot")
@shared_options(SandboxTraffic)
def sandbox_hubspot(
    traffic: SandboxTraffic,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 8765,
    token: Annotated[str, typer.Option(help="Bearer token the sandbox accepts.")] = "sandbox-token",
    contacts: Annotated[int, typer.Option(help="Synthetic contacts to seed.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same portal.")] = 0,
    index_lag_s: Annotated[float, typer.Option("--index-lag", help="Seconds before search sees a write.")] = 0.0,
    webhook_url: WebhookUrlOption = None,
    webhook_secret: WebhookSecretOption = "",
) -> None:
    """Run the HubSpot emulator in the foreground; prints its base URL and token."""
    from connectors.sandbox.hubspot import HubSpotSandboxServer, serve_hubspot_sandbox

    def banner(server: HubSpotSandboxServer) -> list[str]:
        return [
            f"HubSpot sandbox: {server.url}",
            f"token: {server.token}",
            f"contacts: {len(server.portal)} (seed {seed}); stats at {server.url}/__sandbox/stats",
            *([f"webhooks: signed notifications to {webhook_url}"] if webhook_url else []),
        ]

    _run_sandbox(
        serve_hubspot_sandbox,
        banner,
        traffic,
        port=port,
        token=token,
        contacts=contacts,
        seed=seed,
        index_lag_s=index_lag_s,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )


@sandbox_app.command("salesforce")
@shared_options(SandboxTraffic)
def sandbox_salesforce(
    traffic: SandboxTraffic,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 8766,
    token: Annotated[str, typer.Option(help="Access token the sandbox accepts as is.")] = "sandbox-token",
    contacts: Annotated[int, typer.Option(help="Synthetic contacts to seed (with accounts).")] = 400,
    leads: Annotated[int, typer.Option(help="Synthetic leads to seed (some converted).")] = 600,
    seed: Annotated[int, typer.Option(help="Same seed, same org.")] = 0,
    ca_file: Annotated[
        str | None, typer.Option("--ca-file", help="Write the sandbox CA certificate here (default: a temp file).")
    ] = None,
    webhook_url: WebhookUrlOption = None,
    webhook_secret: WebhookSecretOption = "",
) -> None:
    """Run the Salesforce emulator (HTTPS) in the foreground; prints its URL, credentials and CA file."""
    from connectors.sandbox.salesforce import SalesforceSandboxServer, serve_salesforce_sandbox

    def banner(server: SalesforceSandboxServer) -> list[str]:
        org = server.org
        return [
            f"Salesforce sandbox: {server.url}",
            f"token: {server.token}",
            f"client_id: {server.client_id}  client_secret: {server.client_secret}",
            f"ca_file: {server.ca_pem_path}",
            f"leads: {org.count('Lead')}, contacts: {org.count('Contact')} (seed {seed}); "
            f"stats at {server.url}/__sandbox/stats",
            *([f"webhooks: outbound messages to {webhook_url}"] if webhook_url else []),
        ]

    _run_sandbox(
        serve_salesforce_sandbox,
        banner,
        traffic,
        port=port,
        token=token,
        leads=leads,
        contacts=contacts,
        seed=seed,
        ca_file=ca_file,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
