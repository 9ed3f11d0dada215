"""Config loading: interpolation, validation, and messages that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadsync.config import ConfigError, load_config, parse_config, resolve_path

MINIMAL = "crm: hubspot\nhubspot:\n  access_token: ${LS_TEST_TOKEN}\n  base_url: http://127.0.0.1:1\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leadsync.yaml"
    path.write_text(text)
    return path


def test_env_interpolation_keeps_secret_out_of_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_TEST_TOKEN", "pat-na1-secret")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.hubspot is not None
    assert config.hubspot.access_token.get_secret_value() == "pat-na1-secret"
    assert "pat-na1-secret" not in repr(config)


def test_dollar_signs_in_rules_are_not_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_TEST_TOKEN", "t")
    config = parse_config(
        {"crm": "hubspot", "hubspot": {"access_token": "${LS_TEST_TOKEN}"}, "scoring": {"x": "^(vp|ceo)$"}}
    )
    assert config.scoring == {"x": "^(vp|ceo)$"}


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (MINIMAL, "hubspot.access_token", "LS_TEST_TOKEN is not set"),
        ("crm: pipedrive\n", "crm", "'hubspot' or 'salesforce'"),
        ("crm: hubspot\n", "", "a `hubspot:` section is required"),
        (
            "crm: hubspot\nhubspot: {access_token: x, rate_limit_per_10s: lots}\n",
            "hubspot.rate_limit_per_10s",
            "integer",
        ),
        ("crm: hubspot\nhubspot: {access_token: x, acess: 1}\n", "hubspot.acess", "unknown key"),
        ("crm: hubspot\nhubspot: {access_token: x}\nwriteback: {lifecycle_stage: nope}\n", "writeback", "nope"),
        ("crm: hubspot\nhubspot: {access_token: x\n  base_url: [\n", "line ", "invalid YAML"),
        ("- a\n- b\n", "", "top level"),
    ],
)
def test_errors_name_file_key_and_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str, expected: str
) -> None:
    monkeypatch.delenv("LS_TEST_TOKEN", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert key in message
    assert expected in message


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="leadsync init"):
        load_config(tmp_path / "absent.yaml")


def test_config_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADSYNC_CONFIG", raising=False)
    assert resolve_path(None) == Path("leadsync.yaml")
    monkeypatch.setenv("LEADSYNC_CONFIG", "/etc/leadsync.yaml")
    assert resolve_path(None) == Path("/etc/leadsync.yaml")
    assert resolve_path("mine.yaml") == Path("mine.yaml")


def test_references_work_in_flow_style_and_inside_strings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_TEST_TOKEN", "tok: with, yaml {chars}")
    monkeypatch.setenv("LS_PW", "s3cret")
    path = write(
        tmp_path,
        "crm: hubspot\nhubspot: {access_token: ${LS_TEST_TOKEN}, base_url: http://127.0.0.1:8765}\n"
        "state: {url: 'postgresql+psycopg://u:${LS_PW}@db/leadsync'}\n"
        "scoring: {note: 'costs $${NOT_A_VAR}'}\n",
    )
    config = load_config(path)
    assert config.hubspot is not None
    assert config.hubspot.access_token.get_secret_value() == "tok: with, yaml {chars}"
    assert config.state.url == "postgresql+psycopg://u:s3cret@db/leadsync"
    assert config.scoring == {"note": "costs ${NOT_A_VAR}"}
