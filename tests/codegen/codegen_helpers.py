"""Running PolicyTest suites against a compiled plugin, in-process or in a real plugin process.

A case step becomes what the host would send (an HTTP request context, or an object event);
the plugin's answers become a runtime `Decision` that `celgate test`'s own `check_expect`
judges. Two transports: `InProcess` calls the generated class's SDK hooks directly; `ViaHost`
sends the same calls as protobuf HookCalls / ObjectHookRequests through `engine/handle.py` to a
plugin process the supervisor started from its `file://` folder.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from celgate.codegen.bundle import plan_bundles
from celgate.codegen.emit import emit_module
from celgate.codegen.manifest import manifest_text
from celgate.policies.lint import lint_paths
from celgate.policies.model import Policy, PolicyTestDoc, TestStep
from celgate.policies.runtime import ApproverSpec, Decision, Violation
from celgate.policies.runtime.inputs import normalize_headers
from celgate.policies.testing import check_expect
from celgate.sdk import (
    LLM,
    Actor,
    Deny,
    Headers,
    Identity,
    Mutate,
    ObjectEvent,
    PendingApproval,
    Request,
    RequestContext,
    Respond,
    ResponseEnd,
    ResponseHead,
    Usage,
)
from celgate.v1 import common_pb2, plugin_pb2

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "policies"
_ids = itertools.count(1)


# -- compiling ---------------------------------------------------------------------------


def policies_in(paths: Sequence[str | Path]) -> list[Policy]:
    result = lint_paths(paths)
    assert not result.errors, [d.message for d in result.diagnostics]
    return [d for d in result.documents if isinstance(d, Policy)]


def suites_in(paths: Sequence[str | Path]) -> list[PolicyTestDoc]:
    return [d for d in lint_paths(paths).documents if isinstance(d, PolicyTestDoc)]


def compile_selected(policies: Sequence[Policy], names: Sequence[str], out: Path, plugin_id: str) -> Path:
    """Compile the named policies into one plugin folder under `out`; returns the folder."""
    chosen = [p for p in policies if p.metadata.name in set(names)]
    assert chosen, f"no policies named {names}"
    (bundle,) = plan_bundles(chosen, plugin_id)
    folder = out / plugin_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(manifest_text(bundle))
    (folder / "plugin.py").write_text(emit_module(bundle))
    return folder


def import_plugin(folder: Path) -> ModuleType:
    """Import a generated plugin.py under a unique module name."""
    name = f"compiled_{folder.name.replace('-', '_')}_{next(_ids)}"
    spec = importlib.util.spec_from_file_location(name, folder / "plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- one step as the host would send it ----------------------------------------------------


@dataclass
class WireRequest:
    id: str
    method: str = "POST"
    path: str = "/v1/chat/completions"
    query_string: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    remote_addr: str = "127.0.0.1"
    client_ip: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)


def wire_request(step: TestStep) -> WireRequest:
    raw: Mapping[str, Any] = step.inputs.get("request") or {}
    body = raw.get("body")
    wire = WireRequest(id=str(raw.get("id") or f"req-{next(_ids)}"))
    wire.method = str(raw.get("method", "POST"))
    wire.path = str(raw.get("path", "/v1/chat/completions"))
    wire.query_string = urllib.parse.urlencode(raw.get("query") or {}, doseq=True)
    wire.headers = list(normalize_headers(raw.get("headers")).items())
    wire.body = json.dumps(body).encode() if body is not None else b""
    if raw.get("client_ip"):
        # A given client_ip is the client as far as the policy is concerned ("giving client_ip
        # sets it directly"): on the wire that is a direct connection from it, so a forwarded
        # chain in the case's headers must not be resolved again through trusted proxies.
        wire.remote_addr = wire.client_ip = str(raw["client_ip"])
        wire.headers = [(k, v) for k, v in wire.headers if k not in ("x-forwarded-for", "forwarded")]
    else:
        wire.remote_addr = str(raw.get("remote_addr", "127.0.0.1"))
    wire.identity = dict(step.inputs.get("identity") or {})
    wire.llm = dict(step.inputs.get("llm") or {})
    return wire


@dataclass
class Answer:
    """A request hook's answer, transport-neutral."""

    reply: bool
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class Transport(Protocol):
    async def request(self, phase: str, wire: WireRequest) -> Answer: ...

    async def response(self, wire: WireRequest, status: int, usage: Mapping[str, int]) -> None: ...

    async def object_hook(self, event: ObjectEvent) -> Decision: ...


def decision_of(answers: Sequence[Answer]) -> Decision:
    headers: dict[str, str] = {}
    for a in answers:
        headers.update({k.lower(): v for k, v in a.headers})
    last = answers[-1]
    if not last.reply:
        return Decision(policy="", kind="", decision="allow", outcome="passed", headers=headers)
    doc = json.loads(last.body) if last.body else {}
    error = doc.get("error", {}) if isinstance(doc, dict) else {}
    violations = tuple(
        Violation(v.get("rule", ""), v.get("message", ""), last.status) for v in error.get("violations", [])
    )
    return Decision(
        policy=str(error.get("policy", "")),
        kind="",
        decision="deny",
        outcome="enforced",
        status=last.status,
        message=str(error.get("message", "")),
        headers=headers,
        body=doc,
        violations=violations,
    )


def object_event(raw: Mapping[str, Any]) -> ObjectEvent:
    operation = str(raw.get("operation", "create"))
    actor = raw.get("actor") or {}
    return ObjectEvent(
        hook=f"before_{operation}",
        object_type=str(raw.get("type", "")),
        operation=operation,
        object=dict(raw.get("value") or {}),
        previous=dict(raw["previous"]) if raw.get("previous") is not None else None,
        actor=Actor(
            id=actor.get("id", ""), email=actor.get("email", ""), groups=list(actor.get("groups", []))
        ),
        request_id=f"obj-{next(_ids)}",
    )


@dataclass
class CaseOutcome:
    case: str
    failures: list[str]
    skipped_checks: list[str] = field(default_factory=list)


async def run_case(case: Any, transport: Transport, set_clock: Callable[[float], None]) -> CaseOutcome:
    outcome = CaseOutcome(case.name, [])
    for index, step in enumerate(case.steps):
        set_clock(step.at.seconds if step.at is not None else 0.0)
        expect = dict(step.expect)
        if "object" in step.inputs:
            decision = await transport.object_hook(object_event(step.inputs["object"]))
            if decision.decision == "pending_approval" and "mutated" in expect:
                # The wire verdict for a pending approval carries no object (ObjectVerdict has
                # approvers only), so a patch parked with the change cannot be checked here.
                expect.pop("mutated")
                outcome.skipped_checks.append(f"step {index + 1}: mutated (pending_approval)")
        else:
            wire = wire_request(step)
            answers = [await transport.request("pre_auth", wire)]
            if not answers[-1].reply:
                answers.append(await transport.request("post_auth", wire))
            decision = decision_of(answers)
            response = step.inputs.get("response")
            if response is not None and not answers[-1].reply:
                usage = dict((response or {}).get("usage") or {})
                await transport.response(wire, int(response.get("status", 200)), usage)
        outcome.failures += [f"step {index + 1}: {f}" for f in check_expect(expect, decision)]
    return outcome


# -- transports ----------------------------------------------------------------------------


class InProcess:
    """Calls the generated plugin class's SDK hooks directly."""

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        self.caps = set(type(plugin).__mro__)

    def _ctx(self, wire: WireRequest) -> RequestContext:
        request = Request(
            method=wire.method,
            path=wire.path,
            query_string=wire.query_string,
            headers=Headers(wire.headers),
            body=wire.body,
            id=wire.id,
            remote_addr=wire.remote_addr,
            client_ip=wire.client_ip,
        )
        ident = wire.identity
        identity = Identity(
            authenticated=bool(ident.get("authenticated", False)),
            app_id=str(ident.get("app_id", "")),
            user_id=str(ident.get("user_id", "")),
            groups=list(ident.get("groups", [])),
            claims={str(k): str(v) for k, v in (ident.get("claims") or {}).items()},
        )
        llm = LLM(**{k: str(v) for k, v in wire.llm.items()})
        return RequestContext(request=request, identity=identity, llm=llm)

    async def request(self, phase: str, wire: WireRequest) -> Answer:
        result = await getattr(self.plugin, f"on_{phase}")(self._ctx(wire))
        if isinstance(result, Respond):
            return Answer(True, result.status, list(result.headers), result.body)
        return Answer(False, headers=list(result.response_headers))

    async def response(self, wire: WireRequest, status: int, usage: Mapping[str, int]) -> None:
        ctx = self._ctx(wire)
        await self.plugin.on_response_headers(ctx, ResponseHead(status=status))
        await self.plugin.on_response_end(ctx, ResponseEnd(status=status, usage=Usage(**usage)))

    async def object_hook(self, event: ObjectEvent) -> Decision:
        verdict = self.plugin.handle_object_hook(RequestContext(), event)
        return object_decision(verdict)


def object_decision(verdict: Any) -> Decision:
    if isinstance(verdict, Deny):
        return Decision(policy="", kind="", decision="deny", outcome="enforced", message=verdict.reason)
    if isinstance(verdict, PendingApproval):
        return Decision(
            policy="",
            kind="",
            decision="pending_approval",
            outcome="enforced",
            message=verdict.message,
            approvers=ApproverSpec(tuple(verdict.groups), verdict.min_approvals, verdict.expires_after),
        )
    if isinstance(verdict, Mutate):
        return Decision(policy="", kind="", decision="allow", outcome="passed", mutated=verdict.obj)
    return Decision(policy="", kind="", decision="allow", outcome="passed")


class ViaHost:
    """Sends the calls as the host does, through a PluginHandle to a real plugin process."""

    def __init__(self, handle: Any, timeout: float = 5.0) -> None:
        self.handle = handle
        self.timeout = timeout

    def _ctx(self, wire: WireRequest) -> plugin_pb2.RequestContext:
        ident = wire.identity
        return plugin_pb2.RequestContext(
            request=plugin_pb2.HttpRequest(
                id=wire.id,
                method=wire.method,
                path=wire.path,
                query_string=wire.query_string,
                headers=[common_pb2.Header(name=k, value=v) for k, v in wire.headers],
                body=wire.body,
                remote_addr=wire.remote_addr,
                client_ip=wire.client_ip,
            ),
            identity=common_pb2.Identity(
                authenticated=bool(ident.get("authenticated", False)),
                app_id=str(ident.get("app_id", "")),
                user_id=str(ident.get("user_id", "")),
                groups=[str(g) for g in ident.get("groups", [])],
                claims={str(k): str(v) for k, v in (ident.get("claims") or {}).items()},
            ),
            llm=plugin_pb2.LLMRef(**{k: str(v) for k, v in wire.llm.items()}),
            runtime="gateway",
        )

    async def request(self, phase: str, wire: WireRequest) -> Answer:
        if phase not in self.handle.capabilities:
            return Answer(False)  # the host never calls a phase the plugin does not implement
        call = plugin_pb2.HookCall(**{phase: self._ctx(wire)})
        reply = await self.handle.hook(call, self.timeout)
        verdict = reply.request
        extra = [(h.name, h.value) for h in verdict.response_headers]
        if verdict.HasField("reply"):
            r = verdict.reply
            return Answer(True, r.status, [(h.name, h.value) for h in r.headers] + extra, r.body)
        return Answer(False, headers=extra)

    async def response(self, wire: WireRequest, status: int, usage: Mapping[str, int]) -> None:
        if "response" not in self.handle.capabilities:
            return
        ctx = self._ctx(wire)
        head = plugin_pb2.ResponseHeaders(context=ctx, status=status)
        await self.handle.hook(plugin_pb2.HookCall(response_headers=head), self.timeout)
        end = plugin_pb2.ResponseEnd(context=ctx, status=status, usage=plugin_pb2.Usage(**usage))
        await self.handle.hook(plugin_pb2.HookCall(response_end=end), self.timeout)

    async def object_hook(self, event: ObjectEvent) -> Decision:
        request = plugin_pb2.ObjectHookRequest(
            hook=event.hook,
            object_type=event.object_type,
            operation=event.operation,
            object_json=json.dumps(event.object) if event.object is not None else "",
            previous_json=json.dumps(event.previous) if event.previous is not None else "",
            actor=plugin_pb2.Actor(id=event.actor.id, email=event.actor.email, groups=event.actor.groups),
            request_id=event.request_id,
        )
        v = await self.handle.unary("HandleObjectHook", request, self.timeout)
        which = v.WhichOneof("verdict")
        if which == "deny":
            return Decision(policy="", kind="", decision="deny", outcome="enforced", message=v.deny)
        if which == "pending_approval":
            a = v.pending_approval
            return Decision(
                policy="",
                kind="",
                decision="pending_approval",
                outcome="enforced",
                message=v.message,
                approvers=ApproverSpec(tuple(a.groups), a.min_approvals, a.expires_after_ms / 1000),
            )
        if which == "modify":
            return Decision(
                policy="", kind="", decision="allow", outcome="passed", mutated=json.loads(v.modify)
            )
        return Decision(policy="", kind="", decision="allow", outcome="passed")


# -- `celgate serve` subprocesses ----------------------------------------------------------


class Serve:
    """`celgate serve ARGS...` in a subprocess; stderr is read on a thread (no buffered-pipe races)."""

    def __init__(self, *args: str, cwd: Path = REPO) -> None:
        import os
        import queue
        import subprocess
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celgate", "serve", *args],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.url = ""
        self._q: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            self._q.put(line)
        self._q.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 60.0) -> Serve:
        import queue
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError("celgate serve exited:\n" + self.output)
            if "gateway listening on " in line:
                self.url = line.split("gateway listening on ", 1)[1].strip()
                return self
        raise AssertionError("celgate serve did not get ready:\n" + self.output)

    def wait_exit(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._thread.join(timeout=5)
        return code

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._thread.join(timeout=5)


HOST_CONFIG = """\
gateway:
  listen: 127.0.0.1:0
studio:
  listen: 127.0.0.1:0
upstreams:
  - id: standin
    base_url: standin
    models: ["*"]
counters:
  backend: {backend}
  redis_url: "{redis_url}"
"""

CHAT = {"model": "standin", "messages": [{"role": "user", "content": "hello"}]}


# -- Redis ---------------------------------------------------------------------------------

REDIS_URL = os.environ.get("CELGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    """Skip (with the reason) when no Redis answers at REDIS_URL; in CI (`CI` set), fail."""
    import pytest
    import redis

    try:
        ok = bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except Exception:
        ok = False
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but no Redis answers at {REDIS_URL}")
        pytest.skip(f"no Redis at {REDIS_URL} (start redis-server; CI requires it)")
