"""Config loading: interpolation, validation, and messages that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leadsync.app import build_app
from leadsync.config import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    ConfigError,
    load_config,
    load_rules_file,
    load_sections,
    parse_config,
    resolve_path,
)
from leadsync.logs import scrub

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


# -- issue 19: ${NAME} only in connection settings, secrets stripped and scrubbed, one strict loader ----------


@pytest.mark.parametrize(
    ("scoring", "key"),
    [
        ("fit: [{name: d, label: 'debug ${LS_LEAK_TOKEN}', points: 1, when: {job_title: x}}]", "scoring.fit[0].label"),
        ("fit: [{name: d, points: ${LS_LEAK_TOKEN}, when: {job_title: x}}]", "scoring.fit[0].points"),
    ],
)
def test_references_outside_connection_settings_are_rejected_without_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scoring: str, key: str
) -> None:
    monkeypatch.setenv("LS_LEAK_TOKEN", "pat-na1-leak-7781")
    path = write(tmp_path, f"{MINIMAL.replace('${LS_TEST_TOKEN}', 'x')}scoring:\n  {scoring}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert key in message and "${LS_LEAK_TOKEN}" in message and "connection settings" in message
    assert "pat-na1-leak-7781" not in message
    with pytest.raises(ConfigError, match="connection settings"):  # offline commands read the same way
        load_sections(path, ("scoring",))


def test_crm_key_takes_no_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_CRM", "hubspot")
    with pytest.raises(ConfigError, match="crm: `\\$\\{LS_CRM\\}` is not replaced here"):
        parse_config({"crm": "${LS_CRM}", "hubspot": {"access_token": "x"}})


def test_secret_with_a_trailing_newline_is_stripped_and_scrubbed_in_every_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LS_TEST_TOKEN", "hs-newline-4471\n")  # as a Kubernetes secret file gives it
    config = load_config(write(tmp_path, MINIMAL))
    assert config.hubspot is not None and config.hubspot.access_token.get_secret_value() == "hs-newline-4471"
    for shape in ("hs-newline-4471", "hs-newline-4471\n", repr("hs-newline-4471\n"), repr(b"Bearer hs-newline-4471\n")):
        assert "hs-newline-4471" not in scrub(f"Invalid header value {shape}")


def test_literal_secrets_are_stripped_and_registered_too() -> None:
    config = parse_config({"crm": "hubspot", "hubspot": {"access_token": "  pat-literal-0042 \n"}})
    assert config.hubspot is not None and config.hubspot.access_token.get_secret_value() == "pat-literal-0042"
    assert scrub("token pat-literal-0042!") == "token [redacted]!"


def test_adjacent_references_and_the_literal_escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_A", "http://127.0.0.1")
    monkeypatch.setenv("LS_B", ":8765")
    path = write(
        tmp_path,
        "crm: hubspot\nhubspot: {access_token: 'pa$$word', base_url: ${LS_A}${LS_B}}\n"
        "scoring: {note: 'costs $${LS_A}, regex ^vp$'}\n",
    )
    config = load_config(path)
    assert config.hubspot is not None and config.hubspot.base_url == "http://127.0.0.1:8765"
    assert config.hubspot.access_token.get_secret_value() == "pa$$word"  # only `$${` is an escape
    assert config.scoring == {"note": "costs ${LS_A}, regex ^vp$"}


@pytest.mark.parametrize("loader", ["config", "sections"])
def test_unknown_top_level_key_is_rejected_by_every_loader(tmp_path: Path, loader: str) -> None:
    path = write(tmp_path, "crm: hubspot\nhubspot: {access_token: x}\nscroing: {grades: {hot: 90}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path) if loader == "config" else load_sections(path, ("scoring",))
    assert "scroing: unknown key (did you mean 'scoring'?" in str(info.value)


def test_duplicate_keys_are_rejected_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "crm: hubspot\nscoring: {grades: {hot: 90}}\nhubspot: {access_token: x}\nscoring: {}\n")
    for load in (load_config, lambda p: load_sections(p, ("scoring",)), load_rules_file):
        with pytest.raises(ConfigError) as info:
            load(path)
        assert "line 4" in str(info.value) and "duplicate key 'scoring' (also at line 2)" in str(info.value)
    nested = write(tmp_path, "crm: hubspot\nhubspot:\n  access_token: x\n  access_token: y\n")
    with pytest.raises(ConfigError, match="line 4, column 3: invalid YAML: duplicate key 'access_token'"):
        load_config(nested)


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path, "crm: hubspot\nhubspot:\n  <<: {access_token: x, base_url: http://a}\n  base_url: http://b\n"
    )
    config = load_config(path)
    assert config.hubspot is not None and config.hubspot.base_url == "http://b"


def test_deep_nesting_is_rejected_at_load_time(tmp_path: Path) -> None:
    path = write(tmp_path, "crm: hubspot\nscoring:\n  x: " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(ConfigError, match=f"line 3, column .*nested deeper than {MAX_DEPTH} levels"):
        load_config(path)
    deep = "[" * 90 + "]" * 90
    ok = write(tmp_path, f"crm: hubspot\nhubspot: {{access_token: x}}\nmapping: {{fields: {{x: {deep}}}}}\n")
    with pytest.raises(ConfigError, match="mapping"):  # 90 levels parse; the mapping then rejects the value
        build_app(load_config(ok))


def alias_bomb(levels: int) -> str:
    """A "billion laughs" file: each anchor lists the previous one nine times (9**levels strings)."""
    lines = ["crm: hubspot", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"scoring: {{fit: *a{levels}}}", ""])


def test_an_alias_bomb_is_refused_while_parsing(tmp_path: Path) -> None:
    # 9**9 strings expanded would take tens of GB; the loader counts what the aliases would expand to
    path = write(tmp_path, alias_bomb(9))
    with pytest.raises(ConfigError, match=f"invalid YAML: expands to more than {MAX_NODES:,} values"):
        load_config(path)


def test_aliases_of_a_reasonable_size_still_work(tmp_path: Path) -> None:
    # 9**4 = 6,561 expanded strings is under the limit: it loads, and fails later for the nonsense it holds
    path = write(tmp_path, alias_bomb(4))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "expands to" not in str(caught.value)


def test_a_file_larger_than_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "crm: hubspot\nx: '" + "a" * MAX_BYTES + "'\n")
    with pytest.raises(ConfigError, match=r"is 1\.0 MB; a config or rules file may be at most 1024 KB"):
        load_config(path)
    with pytest.raises(ConfigError, match="at most 1024 KB"):
        load_rules_file(path)


@pytest.mark.parametrize(
    ("rule", "key", "hint"),
    [
        ("{name: r, points: 1, counter: page_veiws}", "engagement[0] (rule 'r').counter", "'page_views'"),
        ("{name: r, points: 1, event: {kind: page_veiw}}", "engagement[0] (rule 'r').event.kind", "'page_view'"),
        ("{name: r, points: 1, event: {kind: [visit, meting]}}", "event.kind", "'meeting'"),
    ],
)
def test_misspelled_counters_and_kinds_are_rejected(rule: str, key: str, hint: str) -> None:
    config = parse_config(
        {"crm": "salesforce", "salesforce": {"access_token": "x", "instance_url": "http://a"}}
        | {"scoring": {"engagement": [yaml.safe_load(rule)]}}
    )
    with pytest.raises(ConfigError) as info:
        build_app(config)
    assert key in str(info.value) and f"did you mean {hint}?" in str(info.value)


def test_canonical_and_mapped_counters_are_known() -> None:
    # the Salesforce mapping has no counters: the canonical ones are still known; a mapped one is too
    app = build_app(
        parse_config(
            {"crm": "salesforce", "salesforce": {"access_token": "x", "instance_url": "http://a"}}
            | {"mapping": {"fields": {"logins": {"property": "Logins__c", "type": "int"}}}}
            | {
                "scoring": {
                    "engagement": [
                        {"name": "v", "points": 1, "counter": "page_views"},
                        {"name": "l", "points": 1, "counter": "logins"},
                    ]
                }
            }
        )
    )
    assert {rule.name for _, _, rule in app.rules.rules.iter_rules()} >= {"v", "l"}
