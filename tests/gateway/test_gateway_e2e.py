"""End to end through real processes: `celgate serve` with the example plugins and a chaos
plugin, driven by the official openai client and raw HTTP."""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from .conftest import ROOT, ServeProcess

EXAMPLES = ROOT / "examples" / "plugins"
CHAOS = Path(__file__).parent / "plugins" / "chaos"
KEY = "sk-test-alice"
ADMIN = "cgt_e2e-admin-token-0123456789"
MESSAGES = [{"role": "user", "content": "hello secret world"}]


def _config(tmp: Path) -> Path:
    for pid in ("chaos-closed", "chaos-open"):
        dest = tmp / "plugins" / pid
        shutil.copytree(CHAOS, dest)
        manifest = json.loads((dest / "manifest.json").read_text())
        manifest["id"] = pid
        (dest / "manifest.json").write_text(json.dumps(manifest))
    config = f"""
gateway: {{listen: "127.0.0.1:0"}}
studio: {{listen: "127.0.0.1:0", db: studio.db}}
upstreams:
  - {{id: standin, base_url: standin, models: ["*"]}}
plugins:
  - {{id: chaos-closed, ref: "file://plugins/chaos-closed", failure_policy: fail-closed, deadline_ms: 300}}
  - {{id: chaos-open, ref: "file://plugins/chaos-open", failure_policy: fail-open, deadline_ms: 300}}
  - id: apikey-auth
    ref: "file://{EXAMPLES / "apikey-auth"}"
    config:
      keys: [{{key: {KEY}, app_id: test-app, user_id: alice}}]
  - id: header-rewrite
    ref: "file://{EXAMPLES / "header-rewrite"}"
    config:
      set_headers: {{x-served-by: celgate}}
      replace: [{{from: secret, to: "[redacted]"}}]
  - id: jsonl-collector
    ref: "file://{EXAMPLES / "jsonl-collector"}"
    config: {{path: "{tmp / "records.jsonl"}"}}
data_collection: {{batch_size: 10, interval_ms: 20}}
"""
    path = tmp / "celgate.yaml"
    path.write_text(config)
    return path


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("e2e")
    proc = ServeProcess(["--config", str(_config(tmp))], cwd=tmp, env={"CELGATE_ADMIN_TOKEN": ADMIN})
    try:
        proc.wait_ready()
        proc.records = tmp / "records.jsonl"  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.stop()


@pytest.fixture(scope="module")
def client(host: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=host.gateway_url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def raw(url: str, body: Any = None, headers: dict[str, str] | None = None, method: str | None = None):  # type: ignore[no-untyped-def]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_until(cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def records(host: ServeProcess) -> list[dict[str, Any]]:
    path: Path = host.records  # type: ignore[attr-defined]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record_for(host: ServeProcess, request_id: str) -> dict[str, Any]:
    return wait_until(lambda: next((r for r in records(host) if r["request_id"] == request_id), None))


def test_openai_client_plain_completion_through_the_example_plugins(
    client: openai.OpenAI, host: ServeProcess
) -> None:
    resp = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    completion = resp.parse()
    assert completion.choices[0].message.content == "echo: hello [redacted] world"
    assert completion.usage is not None and completion.usage.total_tokens == 7
    assert resp.headers["x-served-by"] == "celgate"
    rec = record_for(host, resp.headers["x-request-id"])
    assert rec["identity"]["app_id"] == "test-app" and rec["status"] == 200
    assert rec["usage"]["total_tokens"] == 7 and rec["streaming"] is False


def test_openai_client_streaming_is_rewritten_chunk_by_chunk_in_order(client: openai.OpenAI) -> None:
    words = " ".join(f"w{i} secret" for i in range(20))
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": words}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == "echo: " + words.replace("secret", "[redacted]")
    assert len(pieces) == 41  # one per word: nothing merged or reordered
    assert usage is not None and usage.completion_tokens == 41


def test_openai_client_embeddings_models_and_completions(client: openai.OpenAI) -> None:
    emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    assert "standin-echo" in [m.id for m in client.models.list()]
    text = client.completions.create(model="gpt-4o-mini", prompt="keep the secret")
    assert text.choices[0].text == "echo: keep the [redacted]"


def test_unknown_key_is_rejected_by_the_auth_plugin(host: ServeProcess) -> None:
    bad = openai.OpenAI(base_url=host.gateway_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    status, headers, body = raw(
        host.gateway_url + "/v1/chat/completions", {"model": "m", "messages": MESSAGES}
    )
    assert status == 401 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "authentication_error"


def test_request_id_header_is_passed_through(host: ServeProcess) -> None:
    status, headers, _ = raw(
        host.gateway_url + "/v1/chat/completions",
        {"model": "m", "messages": MESSAGES},
        {"authorization": f"Bearer {KEY}", "x-request-id": "e2e-req-1", "content-type": "application/json"},
    )
    assert status == 200 and headers["x-request-id"] == "e2e-req-1"
    assert record_for(host, "e2e-req-1")["path"] == "/v1/chat/completions"


def test_hanging_fail_closed_plugin_gives_503_and_fail_open_is_skipped(host: ServeProcess) -> None:
    url = host.gateway_url + "/v1/chat/completions"
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    status, _, body = raw(url, {"model": "m", "messages": MESSAGES}, {**auth, "x-chaos-chaos-closed": "hang"})
    assert status == 503
    assert json.loads(body)["error"]["code"] == "plugin_unavailable" and b"chaos" not in body
    headers = {**auth, "x-chaos-chaos-open": "hang", "x-request-id": "skip-1"}
    status, _, body = raw(url, {"model": "m", "messages": MESSAGES}, headers)
    assert status == 200
    decisions = record_for(host, "skip-1")["decisions"]
    assert {
        "policy": "chaos-open",
        "rule": "pre_auth",
        "decision": "skipped",
        "mode": "fail-open",
        "reason": "deadline",
    } in decisions
    assert not any(d["decision"] == "passed" for d in decisions)
    status, _, _ = raw(url, {"model": "m", "messages": MESSAGES}, {**auth, "x-chaos-chaos-open": "error"})
    assert status == 200


def _plugin(host: ServeProcess, pid: str) -> dict[str, Any]:
    status, _, body = raw(host.studio_url + f"/api/v1/runtime/plugins/{pid}")
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


def test_killed_fail_closed_plugin_gives_503_then_recovers(host: ServeProcess) -> None:
    url = host.gateway_url + "/v1/chat/completions"
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    before = _plugin(host, "chaos-closed")
    status, _, body = raw(
        url, {"model": "m", "messages": MESSAGES}, {**auth, "x-chaos-chaos-closed": "crash"}
    )
    assert status == 503 and b"chaos" not in body
    wait_until(lambda: (p := _plugin(host, "chaos-closed"))["healthy"] and p["pid"] != before["pid"], 20)
    status, _, _ = raw(url, {"model": "m", "messages": MESSAGES}, auth)
    assert status == 200


def test_killed_fail_open_plugin_is_skipped_and_recorded(host: ServeProcess) -> None:
    url = host.gateway_url + "/v1/chat/completions"
    headers = {
        "authorization": f"Bearer {KEY}",
        "content-type": "application/json",
        "x-chaos-chaos-open": "crash",
        "x-request-id": "skip-crash",
    }
    status, _, _ = raw(url, {"model": "m", "messages": MESSAGES}, headers)
    assert status == 200
    decisions = record_for(host, "skip-crash")["decisions"]
    assert [(d["policy"], d["decision"]) for d in decisions] == [("chaos-open", "skipped")]
    assert decisions[0]["reason"] in ("crash", "unavailable")
    wait_until(lambda: _plugin(host, "chaos-open")["healthy"], 20)


def test_stream_is_forwarded_as_it_arrives_not_buffered(host: ServeProcess) -> None:
    host_port = host.gateway_url.removeprefix("http://")
    conn = http.client.HTTPConnection(host_port, timeout=20)
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a b c d e f g h"}]}
    )
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=body,
        headers={
            "authorization": f"Bearer {KEY}",
            "content-type": "application/json",
            "x-standin-chunk-delay-ms": "300",
        },
    )
    resp = conn.getresponse()
    assert resp.status == 200
    first = resp.readline()
    assert first.startswith(b"data: ")
    # The upstream needs ~3 s more for the rest. Had the gateway buffered the stream, all of it
    # would already be here; forwarded as it arrives, [DONE] cannot be.
    sock = resp.fp.raw._sock  # type: ignore[union-attr]
    ready, _, _ = select.select([sock], [], [], 0)
    pending = sock.recv(65536, socket.MSG_DONTWAIT) if ready else b""
    assert b"[DONE]" not in pending
    rest = resp.read()
    assert (first + pending + rest).count(b"data: ") == 12 and b"data: [DONE]" in rest
    conn.close()


def test_custom_endpoints_routes_methods_auth_and_streaming(host: ServeProcess) -> None:
    base = host.gateway_url + "/plugins/jsonl-collector"
    auth = {"authorization": f"Bearer {KEY}"}
    status, _, body = raw(base + "/stats", headers=auth)
    assert status == 200 and "records" in json.loads(body)
    assert raw(base + "/stats")[0] == 401  # the route requires authentication
    assert raw(base + "/stats", {}, {**auth, "content-type": "application/json"}, "POST")[0] == 405
    assert raw(base + "/nothing-here", headers=auth)[0] == 404
    assert raw(host.gateway_url + "/plugins/no-such-plugin/stats", headers=auth)[0] == 404
    assert raw(host.gateway_url + "/plugins/apikey-auth/stats", headers=auth)[0] == 404  # no endpoints
    raw(host.gateway_url + "/v1/models", headers=auth)
    wait_until(lambda: len(records(host)) >= 2)
    status, headers, body = raw(base + "/records?n=2", headers=auth)
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    assert len([json.loads(line) for line in body.splitlines()]) == 2


def test_studio_lists_plugins_with_health(host: ServeProcess) -> None:
    status, _, body = raw(host.studio_url + "/api/v1/runtime/plugins")
    assert status == 200
    plugins = json.loads(body)["plugins"]
    assert [p["id"] for p in plugins] == [
        "chaos-closed",
        "chaos-open",
        "apikey-auth",
        "header-rewrite",
        "jsonl-collector",
    ]
    assert all(p["healthy"] for p in plugins)
    assert raw(host.studio_url + "/healthz")[0] == 200
    raw(host.gateway_url + "/v1/models")

    def stats() -> dict[str, int]:
        status, _, body = raw(host.studio_url + "/api/v1/runtime/stats")
        assert status == 200
        return json.loads(body)["data_collection"]  # type: ignore[no-any-return]

    wait_until(lambda: stats()["submitted"] > 0)
    assert stats()["dropped"] == 0


def test_studio_rest_api_is_served_on_the_studio_port(host: ServeProcess) -> None:
    assert raw(host.studio_url + "/api/v1/me")[0] == 401
    status, _, body = raw(host.studio_url + "/api/v1/me", headers={"authorization": f"Bearer {ADMIN}"})
    assert status == 200 and json.loads(body)["role"] == "admin"
    status, _, body = raw(host.studio_url + "/api/v1/plugins", headers={"authorization": f"Bearer {ADMIN}"})
    assert status == 200 and "items" in json.loads(body)


def test_bad_config_exits_2_with_a_clear_error(serve: Callable[..., ServeProcess], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams:\n  - id: a\n    base_url: http://x\nplugins:\n  - id: p\n    reff: file://x\n")
    proc = serve("--config", str(bad))
    assert proc.wait_exit() == 2
    assert f"{bad}:6: plugins[0].reff: unknown setting 'reff' (did you mean 'ref'?)" in proc.output
    assert "Traceback" not in proc.output


def test_plugin_that_cannot_load_exits_2(serve: Callable[..., ServeProcess], tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("upstreams: [{id: a, base_url: standin}]\nplugins: [{id: p, ref: 'file://missing'}]\n")
    proc = serve("--config", str(cfg), "--gateway-listen", "127.0.0.1:0", "--no-studio")
    assert proc.wait_exit() == 2
    assert "missing" in proc.output and "Traceback" not in proc.output


def test_upstream_down_is_502_and_sigterm_stops_everything(
    serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"gateway: {{listen: '127.0.0.1:0'}}\nstudio: {{listen: '127.0.0.1:0'}}\n"
        f"upstreams: [{{id: down, base_url: 'http://127.0.0.1:{dead}'}}]\n"
        f"plugins: [{{id: header-rewrite, ref: 'file://{EXAMPLES / 'header-rewrite'}'}}]\n"
    )
    proc = serve("--config", str(cfg)).wait_ready()
    status, headers, body = raw(
        proc.gateway_url + "/v1/chat/completions", {"model": "m", "messages": MESSAGES}
    )
    assert status == 502 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "upstream_unreachable"
    pid = _plugin(proc, "header-rewrite")["pid"]
    assert isinstance(pid, int)
    assert proc.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_no_config_runs_the_development_setup_with_a_warning(serve: Callable[..., ServeProcess]) -> None:
    proc = serve("--gateway-listen", "127.0.0.1:0", "--studio-listen", "127.0.0.1:0").wait_ready()
    assert "WARNING" in proc.output and "DEVELOPMENT" in proc.output
    status, _, body = raw(proc.gateway_url + "/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert (
        status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "echo: hello secret world"
    )
    assert proc.stop(signal.SIGINT) == 0  # Ctrl-C is a clean shutdown too
    assert "Traceback" not in proc.output


def test_example_config_serves_the_readme_request(serve: Callable[..., ServeProcess], tmp_path: Path) -> None:
    # A copy, so that the studio database and the JSONL file land in tmp_path, not the repo.
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples" / "plugins", examples / "plugins")
    shutil.copy(ROOT / "examples" / "celgate.yaml", examples / "celgate.yaml")
    proc = serve(
        "--config",
        str(examples / "celgate.yaml"),
        "--gateway-listen",
        "127.0.0.1:0",
        "--studio-listen",
        "127.0.0.1:0",
        cwd=tmp_path,
    ).wait_ready()
    status, headers, body = raw(
        proc.gateway_url + "/v1/chat/completions",
        {"model": "standin", "messages": [{"role": "user", "content": "hello secret world"}]},
        {"authorization": "Bearer demo-key", "content-type": "application/json"},
    )
    assert status == 200 and headers["x-served-by"] == "celgate"
    assert json.loads(body)["choices"][0]["message"]["content"] == "echo: hello [redacted] world"
    wait_until(
        lambda: (examples / "plugins" / "jsonl-collector" / "build" / "celgate-records.jsonl").exists()
    )
    assert (examples / "build" / "celgate-studio.db").exists()
    assert "its API token (shown once)" in proc.output
    assert proc.stop() == 0
