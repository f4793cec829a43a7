"""Host config: valid files load into typed settings; bad ones give file:line errors."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from celgate.engine.config import ConfigError, default_config, load_config, parse_config, parse_listen

GOOD = """\
gateway:
  listen: 0.0.0.0:9000
  trusted_proxies: [10.0.0.0/8, "::1"]
studio:
  listen: 127.0.0.1:9001
upstreams:
  - id: openai
    base_url: https://api.openai.com/
    models: [gpt-4o, "gpt-4o-*"]
    api_key_env: OPENAI_API_KEY
  - id: local
    base_url: standin
    models: ["*"]
    default: true
plugins:
  - id: b
    ref: file://plugins/b
    order: 20
    failure_policy: fail-open
    deadlines: {auth: 50}
  - id: a
    ref: grpc://127.0.0.1:7000
    order: 10
    config: {x: 1}
data_collection: {batch_size: 10, interval_ms: 50}
counters: {backend: redis, redis_url: "redis://127.0.0.1:6379/0"}
"""


def test_good_config_loads_every_section(tmp_path: Path) -> None:
    path = tmp_path / "celgate.yaml"
    path.write_text(GOOD)
    cfg = load_config(path)
    assert str(cfg.gateway.listen) == "0.0.0.0:9000"
    assert cfg.gateway.trusted_proxies == [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1")]
    assert str(cfg.studio.listen) == "127.0.0.1:9001"
    assert [u.id for u in cfg.upstreams] == ["openai", "local"]
    assert cfg.upstreams[0].base_url == "https://api.openai.com"
    assert cfg.upstreams[0].serves("gpt-4o-mini") and not cfg.upstreams[0].serves("claude")
    assert cfg.upstreams[1].default and not cfg.upstreams[0].default
    assert [p.id for p in cfg.ordered_plugins()] == ["a", "b"]
    b = cfg.plugins[0]
    assert b.failure_policy == "fail-open" and b.deadlines == {"auth": 50} and b.deadline_ms == 1000
    assert cfg.plugins[1].failure_policy == "fail-closed"  # the default
    assert cfg.data_collection.batch_size == 10 and cfg.data_collection.interval_ms == 50
    assert cfg.counters.redis_url == "redis://127.0.0.1:6379/0"
    assert cfg.base_dir == tmp_path.resolve()


def test_api_key_is_read_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(GOOD)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert cfg.upstreams[0].api_key == "sk-from-env"
    assert "sk-from-env" not in repr(cfg)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "upstreams:\n  - id: a\n    base_url: http://x\n    api_key: sk-123\n",
            4,
            "never stored in the config",
        ),
        ("gateway:\n  listen: nowhere\nupstreams: [{id: a, base_url: http://x}]\n", 2, "expected HOST:PORT"),
        ("upstreams:\n  - id: a\n    base_url: ftp://x\n", 3, "http(s) URL"),
        (
            "upstreams: [{id: a, base_url: http://x}]\nplugins:\n  - id: p\n    ref: file://p\n"
            "    failur_policy: x\n",
            5,
            "did you mean 'failure_policy'",
        ),
        (
            "upstreams: [{id: a, base_url: http://x}]\nplugins:\n  - id: p\n    ref: file://p\n"
            "    failure_policy: sometimes\n",
            5,
            "fail-closed, fail-open",
        ),
        (
            "upstreams: [{id: a, base_url: http://x}]\nplugins:\n  - {id: p, ref: file://p}\n  - {id: p, ref: file://q}\n",
            4,
            "duplicate plugin id",
        ),
        (
            "upstreams: [{id: a, base_url: http://x}]\nplugins:\n  - id: p\n    ref: /no/scheme\n",
            4,
            "file://",
        ),
        ("upstreams: [{id: a, base_url: http://x}]\ngateway:\n  trusted_proxies: [not-an-ip]\n", 3, "CIDR"),
        ("upstreams: [{id: a, base_url: http://x}]\ndata_collection:\n  batch_size: 0\n", 3, "must be >= 1"),
        ("upstreams: [{id: a, base_url: http://x}]\ncounters: {backend: redis}\n", 2, "redis_url"),
        ("upstreams: [\n", 2, "invalid YAML"),
        ("gateway: {}\n", 1, "at least one upstream"),
        ("- just\n- a list\n", 1, "expected a mapping"),
    ],
)
def test_bad_config_names_file_line_and_setting(text: str, line: int, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="celgate.yaml")
    err = info.value
    assert needle in str(err)
    assert err.line == line
    assert str(err).startswith("celgate.yaml")


def test_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_default_config_is_the_development_setup() -> None:
    cfg = default_config()
    assert cfg.is_default
    assert str(cfg.gateway.listen) == "127.0.0.1:8080" and str(cfg.studio.listen) == "127.0.0.1:8081"
    assert [u.base_url for u in cfg.upstreams] == ["standin"]
    assert cfg.plugins == []


@pytest.mark.parametrize(("text", "host", "port"), [("127.0.0.1:80", "127.0.0.1", 80), ("[::1]:0", "::1", 0)])
def test_parse_listen(text: str, host: str, port: int) -> None:
    addr = parse_listen(text)
    assert (addr.host, addr.port) == (host, port)


@pytest.mark.parametrize("text", ["8080", "host:", ":80", "h:99999", "h:x"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)
