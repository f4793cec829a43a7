"""The plugin base class and one typed interface per capability.

A plugin class inherits `Plugin` plus the interfaces it implements; the SDK derives the
capability list from them (`capabilities_of`). Every handler may be a plain function or an
`async def`. Sync handlers run in a worker thread unless the class sets `inline_sync = True`
(for cheap, non-blocking handlers such as generated policy code: it saves a thread hop).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, ClassVar, TypeVar, Union

from celgate.sdk.context import Context, RequestContext
from celgate.sdk.types import (
    AgentChunk,
    AgentRequest,
    Asset,
    AuthResult,
    DataRecord,
    EndpointRequest,
    Event,
    HttpResponse,
    ObjectEvent,
    ObjectHookRegistration,
    ObjectVerdict,
    RequestResult,
    ResponseChunk,
    ResponseEnd,
    ResponseHead,
    Route,
    ScheduledTask,
    StreamResponse,
)

# Sync or async: a handler returns T or an awaitable of T.
T = TypeVar("T")
MaybeAwaitable = Union[T, Awaitable[T]]  # noqa: UP007 - a generic alias needs Union on 3.11


class Plugin:
    """Base class of every plugin. `id` is filled in from the manifest by `serve()`."""

    id: str = ""
    manifest: ClassVar[dict[str, Any] | None] = None  # else manifest.json beside the entry script
    inline_sync: ClassVar[bool] = False

    def configure(self, ctx: Context, config: dict[str, Any]) -> MaybeAwaitable[None]:
        """Called once after load (and with the new config on reload) before any hook."""
        return None

    def shutdown(self) -> MaybeAwaitable[None]:
        """Called when the host stops the plugin; release resources here."""
        return None


class PreAuth(ABC):
    @abstractmethod
    def on_pre_auth(self, ctx: RequestContext) -> MaybeAwaitable[RequestResult | None]: ...


class Auth(ABC):
    @abstractmethod
    def authenticate(self, ctx: RequestContext, credential: str) -> MaybeAwaitable[AuthResult]: ...


class PostAuth(ABC):
    @abstractmethod
    def on_post_auth(self, ctx: RequestContext) -> MaybeAwaitable[RequestResult | None]: ...


class Response(ABC):  # noqa: B024 - every method is optional; inheriting declares the capability
    """Sees the upstream response. Set `response_chunks = True` to be called per body chunk
    (the host never calls a plugin per chunk that did not ask for it)."""

    response_chunks: ClassVar[bool] = False

    def on_response_headers(
        self, ctx: RequestContext, head: ResponseHead
    ) -> MaybeAwaitable[ResponseHead | None]:
        """Return a changed `ResponseHead` to replace status/headers, or None to keep them."""
        return None

    def on_response_chunk(self, ctx: RequestContext, chunk: ResponseChunk) -> MaybeAwaitable[bytes | None]:
        """Return replacement bytes for this chunk, or None to keep it."""
        return None

    def on_response_end(self, ctx: RequestContext, end: ResponseEnd) -> MaybeAwaitable[bytes | None]:
        """Return bytes to append after the last chunk, or None."""
        return None


class DataCollector(ABC):
    @abstractmethod
    def collect(self, ctx: Context, records: list[DataRecord]) -> MaybeAwaitable[int | None]:
        """Store the batch; return how many records were accepted (None: all)."""


class CustomEndpoints(ABC):
    @abstractmethod
    def routes(self) -> list[Route]: ...

    @abstractmethod
    def handle_endpoint(
        self, ctx: Context, request: EndpointRequest
    ) -> MaybeAwaitable[HttpResponse | StreamResponse]: ...


class ObjectHooks(ABC):
    @abstractmethod
    def object_hooks(self) -> list[ObjectHookRegistration]: ...

    @abstractmethod
    def handle_object_hook(self, ctx: Context, event: ObjectEvent) -> MaybeAwaitable[ObjectVerdict]: ...


class Agent(ABC):
    @abstractmethod
    def handle_message(
        self, ctx: Context, message: AgentRequest
    ) -> AsyncIterator[AgentChunk] | Iterator[AgentChunk]:
        """Yield typed chunks (a generator or an async generator)."""


class UIProvider(ABC):
    @abstractmethod
    def ui_assets(self) -> list[Asset]: ...

    @abstractmethod
    def ui_call(self, ctx: Context, method: str, payload: Any) -> MaybeAwaitable[Any]:
        """Answer an RPC from the dashboard; payload and result are JSON values."""


class PortalUI(ABC):
    @abstractmethod
    def portal_assets(self) -> list[Asset]: ...

    @abstractmethod
    def portal_call(self, ctx: Context, method: str, payload: Any, user: Any) -> MaybeAwaitable[Any]:
        """Answer an RPC from the user portal; `user` is the portal user (`Actor`)."""


class ConfigProvider(ABC):
    @abstractmethod
    def config_schema(self) -> dict[str, Any]:
        """JSON Schema of this plugin's config."""


class ManifestProvider(ABC):
    @abstractmethod
    def provide_manifest(self) -> dict[str, Any]:
        """The manifest, when it is computed rather than read from manifest.json."""


class ScheduledTasks(ABC):
    @abstractmethod
    def run_task(self, ctx: Context, task: ScheduledTask) -> MaybeAwaitable[str | None]:
        """Run one scheduled task; return optional output text (raise to report failure)."""


class EventSubscriber(ABC):
    subscriptions: ClassVar[list[str]] = []  # topics, or prefixes ending in ".*"

    @abstractmethod
    def on_event(self, ctx: Context, event: Event) -> MaybeAwaitable[None]: ...


CAPABILITIES: dict[str, type] = {
    "pre_auth": PreAuth,
    "auth": Auth,
    "post_auth": PostAuth,
    "response": Response,
    "data_collection": DataCollector,
    "custom_endpoints": CustomEndpoints,
    "object_hooks": ObjectHooks,
    "agent": Agent,
    "ui_provider": UIProvider,
    "portal_ui": PortalUI,
    "config_provider": ConfigProvider,
    "manifest_provider": ManifestProvider,
    "scheduled_tasks": ScheduledTasks,
    "event_subscriber": EventSubscriber,
}

HOOK_CAPABILITIES = frozenset({"pre_auth", "auth", "post_auth", "response"})


def capabilities_of(plugin: object) -> list[str]:
    """The capabilities `plugin` implements, in the canonical order."""
    return [name for name, iface in CAPABILITIES.items() if isinstance(plugin, iface)]
