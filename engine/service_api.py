"""The Service API (HostService) the host offers to its plugins, on its own unix socket.

A plugin proves who it is with the per-process secret the host generated for it (metadata
`celgate-plugin-secret`); the plugin id, and so its KV namespace, log name and event origin, come
from that secret and never from the message. Every method needs a scope (`METHOD_SCOPES`); an
unmapped method is refused. `grants(plugin_id)` says what the plugin holds: a set of scopes
(fail closed: anything outside it is PERMISSION_DENIED), or None for every scope (only for
embedders and tests that run a Service API without an operator; the host never grants that,
see `engine.plugin_manager`). `log.write` is held by every plugin
(`ALWAYS_GRANTED`): refusing a plugin's logs would only hide what it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from celgate.engine import objects
from celgate.engine.approvals import ApprovalDenied
from celgate.engine.changes import approval_event
from celgate.engine.eventbus import EventBus
from celgate.engine.fastservice import FastServiceServer
from celgate.engine.kv import KVError, KVStore, MemoryKV
from celgate.engine.objecthooks import Actor
from celgate.engine.objects import ObjectError
from celgate.engine.scheduler import Busy
from celgate.engine.store.base import Conflict, NotFound, StoredObject, VersionMismatch
from celgate.sdk import counters as ctr
from celgate.sdk.protocol import MAX_MESSAGE_BYTES, SECRET_METADATA
from celgate.v1 import common_pb2, host_pb2, host_pb2_grpc

log = logging.getLogger("celgate.service_api")

OBJECT_TYPES: tuple[str, ...] = tuple(objects.PLURALS)

# method -> the scope a plugin needs to call it. Issue 6: operator-granted scopes per plugin.
METHOD_SCOPES: dict[str, str] = {
    "KvGet": "kv.readwrite",
    "KvSet": "kv.readwrite",
    "KvDelete": "kv.readwrite",
    "KvList": "kv.readwrite",
    "Log": "log.write",
    "Publish": "events.publish",
    "Subscribe": "events.subscribe",
    "CounterAcquire": "counters.use",
    "CounterAdjust": "counters.use",
    # `{type}` is the request's object type: a scope per type and direction
    "ObjectGet": "objects.{type}.read",
    "ObjectList": "objects.{type}.read",
    "ObjectWrite": "objects.{type}.write",
    "ScheduleList": "schedules.manage",
    "ScheduleTrigger": "schedules.manage",
    "ApprovalList": "approvals.read",
    "ApprovalGet": "approvals.read",
    "ApprovalVote": "approvals.write",
}

# every plugin holds these, granted or not
ALWAYS_GRANTED: frozenset[str] = frozenset({"log.write"})
# the scopes a manifest may declare in `permissions.scopes` and an operator may grant
KNOWN_SCOPES: frozenset[str] = frozenset(
    scope.format(type=t) for scope in METHOD_SCOPES.values() for t in OBJECT_TYPES
)

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_ALGORITHMS: dict[int, ctr.Algorithm] = {
    host_pb2.SLIDING_WINDOW: "sliding-window",
    host_pb2.FIXED_WINDOW: "fixed-window",
    host_pb2.TOKEN_BUCKET: "token-bucket",
}


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class HostService(host_pb2_grpc.HostServiceServicer):
    """The servicer; `HostServiceServer` runs it."""

    def __init__(
        self,
        kv: KVStore,
        bus: EventBus,
        counters: ctr.Counters | ctr.AsyncCounters,
        grants: Callable[[str], frozenset[str] | None] | None = None,
    ) -> None:
        self.kv = kv
        self.bus = bus
        self.counters = counters
        self.grants = grants
        self.studio: Any = None  # the host's StudioState, for the object/schedule/approval methods
        # sha256(secret) -> (secret, plugin id): lookups never compare secret bytes directly.
        self._secrets: dict[bytes, tuple[str, str]] = {}

    # ------------------------------------------------------------ identity

    def register(self, plugin_id: str) -> str:
        """A fresh secret for one plugin process; revoke it when the process goes."""
        secret = secrets.token_urlsafe(32)
        self._secrets[_digest(secret)] = (secret, plugin_id)
        return secret

    def revoke(self, secret: str) -> None:
        self._secrets.pop(_digest(secret), None)

    def identify(self, secret: str) -> str | None:
        """The plugin id a per-process secret belongs to, or None (unknown or revoked)."""
        entry = self._secrets.get(_digest(secret)) if secret else None
        if entry is None or not hmac.compare_digest(entry[0].encode(), secret.encode()):
            return None
        return entry[1]

    async def _caller(self, context: Any, method: str, object_type: str = "") -> str:
        presented = ""
        for key, value in context.invocation_metadata() or ():
            if key == SECRET_METADATA:
                presented = value if isinstance(value, str) else value.decode("latin-1")
        plugin_id = self.identify(presented)
        if plugin_id is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or missing plugin secret")
            raise AssertionError("unreachable")
        scope = METHOD_SCOPES.get(method)
        if scope is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} is not available to plugins")
            raise AssertionError("unreachable")
        if "{type}" in scope:
            if object_type not in OBJECT_TYPES:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"object_type must be one of {', '.join(OBJECT_TYPES)}"
                )
            scope = scope.format(type=object_type)
        granted = self.grants(plugin_id) if self.grants is not None else None
        if granted is not None and scope not in granted and scope not in ALWAYS_GRANTED:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"plugin {plugin_id} lacks scope {scope}")
        return plugin_id

    # ------------------------------------------------------------ kv

    async def KvGet(self, request: host_pb2.KvGetRequest, context: Any) -> host_pb2.KvGetReply:
        plugin_id = await self._caller(context, "KvGet")
        value = await self.kv.get(plugin_id, request.key)
        return host_pb2.KvGetReply(found=value is not None, value=value or b"")

    async def KvSet(self, request: host_pb2.KvSetRequest, context: Any) -> host_pb2.KvSetReply:
        plugin_id = await self._caller(context, "KvSet")
        if request.ttl_ms < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ttl_ms must not be negative")
        try:
            created = await self.kv.set(plugin_id, request.key, request.value, request.ttl_ms)
        except KVError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return host_pb2.KvSetReply(created=created)

    async def KvDelete(self, request: host_pb2.KvDeleteRequest, context: Any) -> host_pb2.KvDeleteReply:
        plugin_id = await self._caller(context, "KvDelete")
        return host_pb2.KvDeleteReply(existed=await self.kv.delete(plugin_id, request.key))

    async def KvList(self, request: host_pb2.KvListRequest, context: Any) -> host_pb2.KvListReply:
        plugin_id = await self._caller(context, "KvList")
        keys, more = await self.kv.list(plugin_id, request.prefix, request.limit, request.after)
        return host_pb2.KvListReply(keys=keys, more=more)

    # ------------------------------------------------------------ logs

    async def Log(self, request: host_pb2.LogRecord, context: Any) -> common_pb2.Empty:
        plugin_id = await self._caller(context, "Log")
        level = _LEVELS.get(request.level.lower(), logging.INFO)
        fields = dict(request.fields)
        logger = logging.getLogger(f"celgate.plugin.{plugin_id}")
        suffix = (" " + " ".join(f"{k}={v}" for k, v in sorted(fields.items()))) if fields else ""
        logger.log(level, "%s%s", request.message, suffix, extra={"plugin_id": plugin_id, "fields": fields})
        return common_pb2.Empty()

    # ------------------------------------------------------------ events

    async def Publish(self, request: common_pb2.Event, context: Any) -> common_pb2.Empty:
        plugin_id = await self._caller(context, "Publish")
        if not request.topic or "*" in request.topic:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a topic is a non-empty name without '*'")
        try:
            payload = json.loads(request.payload) if request.payload else None
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the payload must be JSON")
        self.bus.publish(request.topic, payload, origin=plugin_id)
        return common_pb2.Empty()

    async def Subscribe(
        self, request: host_pb2.SubscribeRequest, context: Any
    ) -> AsyncIterator[common_pb2.Event]:
        await self._caller(context, "Subscribe")
        try:
            sub = self.bus.subscribe(list(request.topics))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        try:
            while True:
                event = await sub.get()
                yield common_pb2.Event(
                    id=event.id,
                    topic=event.topic,
                    origin=event.origin,
                    payload=event.payload,
                    unix_ms=event.unix_ms,
                )
        finally:
            sub.close()

    # ------------------------------------------------------------ counters

    async def _limits(self, context: Any, pbs: Any) -> list[ctr.CounterLimit]:
        limits = []
        for pb in pbs:
            algorithm = _ALGORITHMS.get(pb.algorithm)
            if algorithm is None or not pb.key or pb.window_ms <= 0:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "each limit needs a key, an algorithm and window_ms > 0"
                )
                raise AssertionError("unreachable")
            limits.append(ctr.CounterLimit(pb.key, algorithm, pb.limit, pb.window_ms / 1000, pb.cost))
        return limits

    @staticmethod
    def _state(s: ctr.CounterState) -> host_pb2.CounterState:
        return host_pb2.CounterState(limit=s.limit, remaining=s.remaining, reset_ms=round(s.reset_s * 1000))

    async def CounterAcquire(
        self, request: host_pb2.CounterAcquireRequest, context: Any
    ) -> host_pb2.CounterAcquireReply:
        plugin_id = await self._caller(context, "CounterAcquire")
        limits = [_namespaced(plugin_id, x) for x in await self._limits(context, request.limits)]
        try:
            result: Any = self.counters.acquire(limits, dry_run=request.dry_run, force=request.force)
            if inspect.isawaitable(result):
                result = await result
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return host_pb2.CounterAcquireReply(
            admitted=result.admitted,
            states=[self._state(s) for s in result.states],
            retry_after_ms=round(result.retry_after_s * 1000),
        )

    async def CounterAdjust(
        self, request: host_pb2.CounterAdjustRequest, context: Any
    ) -> host_pb2.CounterAdjustReply:
        plugin_id = await self._caller(context, "CounterAdjust")
        limits = [_namespaced(plugin_id, x) for x in await self._limits(context, request.limits)]
        try:
            states: Any = self.counters.adjust(limits)
            if inspect.isawaitable(states):
                states = await states
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return host_pb2.CounterAdjustReply(states=[self._state(s) for s in states])

    # ------------------------------------------------------------ studio: objects

    async def _studio(self, context: Any) -> Any:
        if self.studio is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this host runs no studio")
        return self.studio

    async def ObjectGet(self, request: host_pb2.ObjectGetRequest, context: Any) -> host_pb2.ObjectReply:
        await self._caller(context, "ObjectGet", request.object_type)
        studio = await self._studio(context)
        obj = await studio.store.get_object(request.object_type, request.object_id)
        return _object_reply(obj)

    async def ObjectList(self, request: host_pb2.ObjectListRequest, context: Any) -> host_pb2.ObjectListReply:
        await self._caller(context, "ObjectList", request.object_type)
        studio = await self._studio(context)
        limit = max(1, min(request.limit or 100, 1000))
        items = await studio.store.list_objects(request.object_type, limit=limit, after=request.after)
        return host_pb2.ObjectListReply(
            items=[_object_reply(o) for o in items], next=items[-1].id if len(items) == limit else ""
        )

    async def ObjectWrite(
        self, request: host_pb2.ObjectWriteRequest, context: Any
    ) -> host_pb2.ObjectWriteReply:
        plugin_id = await self._caller(context, "ObjectWrite", request.object_type)
        studio = await self._studio(context)
        actor = Actor(f"plugin:{plugin_id}", "", (f"plugin:{plugin_id}",))
        otype, oid, op = request.object_type, request.object_id, request.operation
        data: Any = None
        if op in ("create", "update"):
            try:
                data = json.loads(request.object_json or "null")
            except ValueError:
                data = None
            if not isinstance(data, dict):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "object_json must be a JSON object")
        expected = request.expected_version or None
        try:
            if op == "create":
                if oid:
                    data["id"] = oid
                result = await studio.changes.create(otype, data, actor)
            elif op == "update":
                current = await studio.store.get_object(otype, oid)
                if current is None:
                    raise NotFound(f"{otype} {oid!r} not found")
                result = await studio.changes.update(
                    otype, oid, {**data, "id": oid}, expected or current.version, actor
                )
            elif op == "delete":
                result = await studio.changes.delete(otype, oid, expected, actor)
            else:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "operation must be create, update or delete"
                )
                raise AssertionError("unreachable")
        except ObjectError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except VersionMismatch as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"the object changed: {exc}")
        except Conflict as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        reply = host_pb2.ObjectWriteReply(status=result.status, reason=result.reason)
        if result.object is not None:
            reply.object_json = json.dumps(result.object.data)
            reply.version = result.object.version
        if result.approval is not None:
            reply.approval_id = result.approval.id
        return reply

    # ------------------------------------------------------------ studio: schedules

    async def ScheduleList(self, request: common_pb2.Empty, context: Any) -> host_pb2.ScheduleListReply:
        plugin_id = await self._caller(context, "ScheduleList")
        studio = await self._studio(context)
        return host_pb2.ScheduleListReply(
            schedules=[
                host_pb2.ScheduleInfo(
                    id=s.id,
                    name=s.name,
                    cron=s.cron.text,
                    next_due_unix_ms=round(due * 1000),
                    running=running,
                )
                for s, due, running in studio.scheduler.schedules()
                if s.plugin_id == plugin_id
            ]
        )

    async def ScheduleTrigger(
        self, request: host_pb2.ScheduleTriggerRequest, context: Any
    ) -> host_pb2.ScheduleTriggerReply:
        plugin_id = await self._caller(context, "ScheduleTrigger")
        studio = await self._studio(context)
        if studio.scheduler.get(plugin_id, request.schedule_id) is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"plugin {plugin_id} has no schedule {request.schedule_id!r}"
            )
        try:
            await studio.scheduler.trigger(plugin_id, request.schedule_id)
        except Busy as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return host_pb2.ScheduleTriggerReply(started=True)

    # ------------------------------------------------------------ studio: approvals

    async def ApprovalList(
        self, request: host_pb2.ApprovalListRequest, context: Any
    ) -> host_pb2.ApprovalListReply:
        await self._caller(context, "ApprovalList")
        studio = await self._studio(context)
        state = request.state or "pending"
        if state not in ("pending", "approved", "rejected", "expired", "failed", "all"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown approval state {state!r}")
        records = await studio.approvals.list(
            "" if state == "all" else state, max(1, min(request.limit or 100, 1000))
        )
        return host_pb2.ApprovalListReply(approvals_json=[json.dumps(approval_event(r)) for r in records])

    async def ApprovalGet(self, request: host_pb2.ApprovalGetRequest, context: Any) -> host_pb2.ApprovalReply:
        await self._caller(context, "ApprovalGet")
        studio = await self._studio(context)
        try:
            record = await studio.approvals.get(request.approval_id)
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return host_pb2.ApprovalReply(approval_json=json.dumps(approval_event(record)))

    async def ApprovalVote(
        self, request: host_pb2.ApprovalVoteRequest, context: Any
    ) -> host_pb2.ApprovalReply:
        plugin_id = await self._caller(context, "ApprovalVote")
        studio = await self._studio(context)
        voter = StoredObject(
            "user",
            f"plugin:{plugin_id}",
            0,
            {
                "id": f"plugin:{plugin_id}",
                "role": "approver",
                "groups": [f"plugin:{plugin_id}"],
                "active": True,
            },
            0.0,
            0.0,
        )
        try:
            record = await studio.approvals.vote(
                request.approval_id, voter, request.decision, request.comment
            )
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except ApprovalDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Conflict as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return host_pb2.ApprovalReply(approval_json=json.dumps(approval_event(record)))


def _object_reply(obj: StoredObject | None) -> host_pb2.ObjectReply:
    if obj is None:
        return host_pb2.ObjectReply(found=False)
    return host_pb2.ObjectReply(found=True, object_json=json.dumps(obj.data), version=obj.version)


def _namespaced(plugin_id: str, limit: ctr.CounterLimit) -> ctr.CounterLimit:
    """Counter keys are per plugin, like KV: one plugin cannot drain another's limits."""
    return ctr.CounterLimit(
        f"{plugin_id}/{limit.key}", limit.algorithm, limit.limit, limit.window_s, limit.cost
    )


class HostServiceServer:
    """Runs `HostService` on a unix socket in a fresh private folder."""

    def __init__(
        self,
        kv: KVStore | None = None,
        bus: EventBus | None = None,
        counters: ctr.Counters | ctr.AsyncCounters | None = None,
        grants: Callable[[str], frozenset[str] | None] | None = None,
        tcp: str | None = None,
    ) -> None:
        self.service = HostService(
            kv or MemoryKV(), bus or EventBus(), counters or ctr.MemoryCounters(), grants
        )
        self._server: grpc.aio.Server | None = None
        self._dir: str | None = None
        self._tcp = tcp  # e.g. "127.0.0.1:0": also listen there, for grpc:// plugins on other hosts
        self.address = ""
        self.network_address = ""
        self.fast_address = ""  # the Service API fast path (unix:PATH), "" when not serving it
        self.fast: FastServiceServer | None = None

    @property
    def bus(self) -> EventBus:
        return self.service.bus

    def register(self, plugin_id: str) -> str:
        return self.service.register(plugin_id)

    def revoke(self, secret: str) -> None:
        self.service.revoke(secret)

    async def start(self) -> str:
        self._dir = tempfile.mkdtemp(prefix="celgate-host-")
        os.chmod(self._dir, 0o700)
        path = os.path.join(self._dir, "host.sock")
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ]
        )
        host_pb2_grpc.add_HostServiceServicer_to_server(self.service, self._server)  # type: ignore[no-untyped-call]
        self._server.add_insecure_port(f"unix:{path}")
        if self._tcp:
            port = self._server.add_insecure_port(self._tcp)
            self.network_address = f"{self._tcp.rsplit(':', 1)[0]}:{port}"
        await self._server.start()
        self.address = f"unix:{path}"
        # the framed fast path for the unary methods (engine/fastservice.py), next to the gRPC socket
        self.fast = FastServiceServer(self.service)
        self.fast_address = await self.fast.start(os.path.join(self._dir, "fast.sock"))
        return self.address

    async def stop(self, grace: float = 1.0) -> None:
        if self.fast is not None:
            await self.fast.stop()
            self.fast, self.fast_address = None, ""
        if self._server is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._server.stop(grace)
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
