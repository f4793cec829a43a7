"""celgate.sdk: what a plugin author imports.

    from celgate.sdk import Plugin, PreAuth, Continue, Respond, serve

    class Guard(Plugin, PreAuth):
        def on_pre_auth(self, ctx):
            if "x-block" in ctx.request.headers:
                return Respond.json(403, {"error": "blocked"})
            return Continue()

    if __name__ == "__main__":
        serve(Guard())

Depends on grpcio and protobuf only; plugin authors never handle protobuf types.
"""

from __future__ import annotations

from celgate.sdk.capabilities import (
    CAPABILITIES,
    Agent,
    Auth,
    ConfigProvider,
    CustomEndpoints,
    DataCollector,
    EventSubscriber,
    ManifestProvider,
    ObjectHooks,
    Plugin,
    PortalUI,
    PostAuth,
    PreAuth,
    Response,
    ScheduledTasks,
    UIProvider,
    capabilities_of,
)
from celgate.sdk.context import Context, RequestContext
from celgate.sdk.counters import AcquireResult, CounterLimit, CounterState
from celgate.sdk.host import ServiceUnavailable
from celgate.sdk.serve import serve
from celgate.sdk.types import (
    LLM,
    Actor,
    AgentChunk,
    AgentRequest,
    AgentTurn,
    Allow,
    Asset,
    Authenticated,
    Continue,
    DataRecord,
    Decision,
    Deny,
    EndpointRequest,
    Event,
    Headers,
    HttpResponse,
    Identity,
    Modify,
    Mutate,
    ObjectEvent,
    ObjectHookRegistration,
    PendingApproval,
    Rejected,
    Request,
    Respond,
    ResponseChunk,
    ResponseEnd,
    ResponseHead,
    Route,
    ScheduledTask,
    StreamResponse,
    Usage,
)

__all__ = [
    "CAPABILITIES",
    "LLM",
    "AcquireResult",
    "Actor",
    "Agent",
    "AgentChunk",
    "AgentRequest",
    "AgentTurn",
    "Allow",
    "Asset",
    "Auth",
    "Authenticated",
    "ConfigProvider",
    "Context",
    "Continue",
    "CounterLimit",
    "CounterState",
    "CustomEndpoints",
    "DataCollector",
    "DataRecord",
    "Decision",
    "Deny",
    "EndpointRequest",
    "Event",
    "EventSubscriber",
    "Headers",
    "HttpResponse",
    "Identity",
    "ManifestProvider",
    "Modify",
    "Mutate",
    "ObjectEvent",
    "ObjectHookRegistration",
    "ObjectHooks",
    "PendingApproval",
    "Plugin",
    "PortalUI",
    "PostAuth",
    "PreAuth",
    "Rejected",
    "Request",
    "RequestContext",
    "Respond",
    "Response",
    "ResponseChunk",
    "ResponseEnd",
    "ResponseHead",
    "Route",
    "ScheduledTask",
    "ScheduledTasks",
    "ServiceUnavailable",
    "StreamResponse",
    "UIProvider",
    "Usage",
    "capabilities_of",
    "serve",
]
