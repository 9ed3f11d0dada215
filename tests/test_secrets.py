"""Secrets reach no output: every command runs with known secrets (the HubSpot token, the Salesforce client
secret, a JWT private key, the database password), and all they print, the state store and the records
the CRM holds afterwards are searched for each secret in every shape it could leak in."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.pool import NullPool

from connectors.sandbox._webhooks import hubspot_signature_v3
from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer

LEADSYNC = [sys.executable, "-m", "leadsync"]
TOKEN = "pat-na1-7d1e5c3a-token-SHOULD-NOT-LEAK"
CLIENT_SECRET = "sf-secret-5b8c9e-SHOULD-NOT-LEAK"
DB_PASSWORD = "pg-pw-0f4e2d-SHOULD-NOT-LEAK"


def shapes(secret: str) -> set[str]:
    """The secret as it could appear: raw, URL-encoded, JSON-escaped, and a long enough piece of it."""
    return {secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1], secret[: max(12, len(secret) // 2)]}


def assert_absent(secrets: Iterable[str], haystack: str, where: str) -> None:
    for secret in secrets:
        for shape in shapes(secret):
            assert shape not in haystack, f"a secret ({shape[:6]}...) appears in {where}"


class Runner:
    """Runs ``leadsync`` as a user does and keeps everything it printed."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env, self.printed = cwd, {**os.environ, **env}, []

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*LEADSYNC, *args], capture_output=True, text=True, timeout=180, env=self.env, cwd=self.cwd, check=False
        )
        self.printed.append(f"$ leadsync {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        if ok:
            assert result.returncode == 0, f"leadsync {' '.join(args)}: {result.stderr[-2000:]}"
        return result

    def everything(self) -> str:
        return "\n".join(self.printed)


def dump_database(url: str) -> str:
    """Every row of every table, as text."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            parts = []
            for table in inspect(conn).get_table_names():
                parts.extend(repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"')))
            return "\n".join(parts)
    finally:
        engine.dispose()


def with_password(url: str, password: str) -> str:
    """The test database's URL with a password (trust auth accepts any): the one the store must not leak."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_hubspot_commands_leak_neither_the_token_nor_the_database_password(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], pg_url: str, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=60, seed=5, token=TOKEN)
    state_url = with_password(pg_url, DB_PASSWORD)
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        "crm: hubspot\n"
        "hubspot: {access_token: ${HUBSPOT_ACCESS_TOKEN}, base_url: " + server.url + ", rate_limit_per_10s: 5000}\n"
        "state: {url: ${LEADSYNC_STATE_URL}}\n"
    )
    rules = tmp_path / "candidate.yaml"
    rules.write_text("scoring:\n  qualification: {threshold: 40, release: 30}\n")
    leads_csv = tmp_path / "leads.csv"
    leads_csv.write_text("email,job_title\nana@acme.io,VP Sales\nbo@gmail.com,Student\n")
    run = Runner(tmp_path, {"HUBSPOT_ACCESS_TOKEN": TOKEN, "LEADSYNC_STATE_URL": state_url})
    c = ["--config", str(config)]

    run("migrate", *c)
    run("check", *c)
    run("mappings", "validate", "--json", *c)
    run("sync", "--once", "--json", *c)
    run("sync", "--once", "--dry-run", "--json", *c)
    run("status", *c)
    run("status", "--json", *c)
    email = server.sandbox.portal.contact(server.sandbox.portal.contact_ids()[0])["email"]  # type: ignore[index]
    run("explain", *c, email)
    run("explain", "--json", *c, email)
    run("preview", "--rules", str(rules), *c)
    run("score", "--input", str(leads_csv), "--output", "-", *c)
    run("evaluate", *c, ok=False)  # may lack outcomes; its messages count all the same
    run("model", "list", *c, ok=False)
    # the failure paths, where a secret is most likely to be quoted: a revoked token, an unreachable store
    server.sandbox.expire_token(TOKEN)
    assert run("sync", "--once", *c, ok=False).returncode != 0
    unreachable = with_password("postgresql+psycopg://postgres@127.0.0.1:1/test", DB_PASSWORD)
    failed = Runner(tmp_path, {"HUBSPOT_ACCESS_TOKEN": TOKEN, "LEADSYNC_STATE_URL": unreachable})
    assert failed("status", *c, ok=False).returncode != 0

    assert_absent([TOKEN, DB_PASSWORD], run.everything() + failed.everything(), "the commands' output")
    assert_absent([TOKEN, DB_PASSWORD], dump_database(pg_url), "the state store")
    crm_values = json.dumps([server.sandbox.portal.contact(i) for i in server.sandbox.portal.contact_ids()])
    assert "leadsync_score" in crm_values  # the writes happened, so the search below means something
    assert_absent([TOKEN, DB_PASSWORD], crm_values, "the CRM's records")


def test_salesforce_commands_leak_neither_the_client_secret_nor_the_private_key(
    salesforce_sandbox_factory: Callable[..., SalesforceSandboxServer], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    # pieces of the key's body: a leak would quote a line of it, not the whole file
    key_lines = [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]

    server = salesforce_sandbox_factory(leads=40, seed=3, client_secret=CLIENT_SECRET, jwt_public_key=public)
    state = tmp_path / "state.db"
    common = f"login_url: {server.url}, client_id: {server.client_id}, ca_file: {server.ca_pem_path}"
    secret_config = tmp_path / "secret.yaml"
    secret_config.write_text(
        "crm: salesforce\n"
        f"salesforce: {{{common}, client_secret: ${{SF_CLIENT_SECRET}}, rate_limit_per_10s: 5000}}\n"
        f"state: {{url: sqlite:///{state}}}\n"
        "sync: {settle_s: 0}\n"
    )
    jwt_config = tmp_path / "jwt.yaml"
    jwt_config.write_text(
        "crm: salesforce\n"
        f"salesforce: {{{common}, username: integration@example.com, private_key_file: {tmp_path / 'key.pem'}}}\n"
        f"state: {{url: sqlite:///{state}}}\n"
        "sync: {settle_s: 0}\n"
    )
    run = Runner(tmp_path, {"SF_CLIENT_SECRET": CLIENT_SECRET})
    run("check", "--config", str(secret_config))
    run("mappings", "validate", "--config", str(secret_config))
    run("sync", "--once", "--json", "--config", str(secret_config))
    run("sync", "--once", "--json", "--config", str(jwt_config))
    run("status", "--json", "--config", str(jwt_config))
    # failure paths: a wrong secret, and a key the org does not trust
    wrong = Runner(tmp_path, {"SF_CLIENT_SECRET": CLIENT_SECRET + "-wrong"})
    assert wrong("sync", "--once", "--config", str(secret_config), ok=False).returncode != 0
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    assert run("sync", "--once", "--config", str(jwt_config), ok=False).returncode != 0

    printed = run.everything() + wrong.everything()
    assert_absent([CLIENT_SECRET, *key_lines], printed, "the commands' output")
    assert_absent([CLIENT_SECRET, *key_lines], state.read_bytes().decode("latin-1"), "the state store file")
    assert_absent([CLIENT_SECRET, *key_lines], dump_database(f"sqlite:///{state}"), "the state store")


WEBHOOK_SECRET = "hs-app-secret-9a7b3c-SHOULD-NOT-LEAK"
SF_WEBHOOK_SECRET = "sf-hook-secret-2d6e8f-SHOULD-NOT-LEAK"


def test_webhook_secrets_reach_no_output_of_run_check_or_a_config_error(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path
) -> None:
    """``leadsync run`` with webhooks on, answering forged, replayed, malformed and good notifications (debug
    logs), and config errors around the webhook keys: neither webhook secret appears anywhere."""
    server = hubspot_sandbox_factory(contacts=20, seed=6, token=TOKEN)
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        "crm: hubspot\n"
        "hubspot: {access_token: ${HUBSPOT_ACCESS_TOKEN}, base_url: " + server.url + ", rate_limit_per_10s: 5000}\n"
        f"state: {{url: sqlite:///{tmp_path / 'state.db'}}}\n"
        "schedule: {sync: {every: 1h}}\n"
        "run: {host: 127.0.0.1, port: 0}\n"
        "webhooks: {enabled: true, hubspot_client_secret: ${HUBSPOT_APP_SECRET}, "
        "salesforce_secret: ${SF_HOOK_SECRET}, batch_window_s: 0.2}\n"
    )
    env = {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_APP_SECRET": WEBHOOK_SECRET, "SF_HOOK_SECRET": SF_WEBHOOK_SECRET}
    run = Runner(tmp_path, env)
    run("check", "--config", str(config))
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("batch_window_s: 0.2", "batch_window_s: 0, queue_size: many"))
    assert run("check", "--config", str(bad), ok=False).returncode != 0
    missing = tmp_path / "missing.yaml"
    missing.write_text(config.read_text().replace("hubspot_client_secret: ${HUBSPOT_APP_SECRET}, ", ""))
    failed = run("check", "--config", str(missing), ok=False)
    assert failed.returncode != 0 and "webhooks.hubspot_client_secret" in failed.stderr

    proc = subprocess.Popen(
        [*LEADSYNC, "--log-level", "debug", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=run.env,
        cwd=tmp_path,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        port = None
        deadline = time.monotonic() + 120
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "daemon.listening" in line:
                found = re.search(r"port\W+(\d+)", line)
                port = int(found.group(1)) if found else None
        assert port is not None, "".join(lines)[-2000:]
        url = f"http://127.0.0.1:{port}/webhooks/hubspot"
        contact = int(server.portal.contact_ids()[0])
        body = json.dumps([{"objectId": contact, "occurredAt": 1, "subscriptionType": "contact.creation"}]).encode()
        now = int(time.time() * 1000)
        answers = []
        for secret, ts, data in (
            (WEBHOOK_SECRET, now, body),
            ("guess", now, body),
            (WEBHOOK_SECRET, now - 600_000, body),
            (WEBHOOK_SECRET, now, b"{}"),
        ):
            signature = hubspot_signature_v3(secret, "POST", url, data, ts)
            headers = {"X-HubSpot-Request-Timestamp": str(ts), "X-HubSpot-Signature-v3": signature}
            answer = requests.post(url, data=data, headers=headers, timeout=10)
            answers.append(f"{answer.status_code} {answer.text}")
        assert [a.split()[0] for a in answers] == ["200", "401", "401", "400"]
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    printed = run.everything() + "".join(lines) + "\n".join(answers) + metrics
    assert "webhooks.rejected" in printed  # the refusals were logged, so the search below means something
    assert_absent([WEBHOOK_SECRET, SF_WEBHOOK_SECRET, TOKEN], printed, "the output of run, check and the endpoint")
