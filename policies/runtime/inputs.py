"""Decision inputs: the CEL activation built once per request (or object change).

`RequestInputs.from_mapping` takes the plain form a PolicyTest case or `explain --input`
uses (the fields of the CEL variables); the gateway-side plugin builds the same object from
its hook context. Header names are lower-cased and repeated values joined with ", "; the
body is the parsed JSON (None if not JSON); `client_ip` is derived from `remote_addr` and
X-Forwarded-For unless given.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from celgate.policies.cel import iplib
from celgate.policies.cel.env import activation_of
from celgate.policies.cel.messages import OBJECT_MESSAGES, plain

REQUEST_DEFAULTS: dict[str, Any] = {
    "method": "POST",
    "path": "/v1/chat/completions",
    "remote_addr": "127.0.0.1",
}
INPUT_KEYS = ("request", "identity", "llm", "response", "now")
OBJECT_KEYS = ("type", "operation", "actor", "value", "previous")
_INPUT_KEY_SET = frozenset(INPUT_KEYS)


class InputError(ValueError):
    """The input does not have the shape of the CEL variables."""


def normalize_headers(headers: Mapping[str, Any] | Sequence[tuple[str, str]] | None) -> dict[str, str]:
    """Lower-cased names; repeated (or list) values joined with ", "."""
    out: dict[str, str] = {}
    if headers is None:
        return out
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if isinstance(value, str):  # the common case, without a list and a join per header
            text = value
        elif isinstance(value, list | tuple):
            text = ", ".join(v if isinstance(v, str) else str(v) for v in value)
        else:
            text = str(value)
        key = name.lower() if isinstance(name, str) else str(name).lower()
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def strip_port(addr: str) -> str:
    """`1.2.3.4:5678` -> `1.2.3.4`, `[::1]:80` -> `::1`; anything else unchanged."""
    addr = addr.strip()
    if addr.startswith("["):
        end = addr.find("]")
        return addr[1:end] if end > 0 else addr
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


def resolve_client_ip(remote_addr: str, forwarded_for: str, trusted: Sequence[iplib.IPNetwork]) -> str:
    """The peer, or when the peer is a trusted proxy, the right-most X-Forwarded-For address
    that is not itself a trusted proxy (the left-most one if all are). IPv4-mapped IPv6
    addresses come back as IPv4. An unparseable hop ends the walk and yields "" (unknown)."""
    peer_text = strip_port(remote_addr)
    try:
        peer = iplib.parse_ip(peer_text)
    except ValueError:
        return ""
    if not trusted or not _in_any(peer, trusted) or not forwarded_for.strip():
        return str(peer)
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    current = peer
    for hop in reversed(hops):
        try:
            current = iplib.parse_ip(strip_port(hop))
        except ValueError:
            return ""
        if not _in_any(current, trusted):
            return str(current)
    return str(current)


_CACHED_TEXT_MAX = 256  # longer peer / X-Forwarded-For texts are resolved without the memo


@lru_cache(maxsize=4096)
def _resolve_cached(remote_addr: str, forwarded_for: str, trusted: tuple[iplib.IPNetwork, ...]) -> str:
    return resolve_client_ip(remote_addr, forwarded_for, trusted)


def _resolve(remote_addr: str, forwarded_for: str, trusted: tuple[iplib.IPNetwork, ...]) -> str:
    """`resolve_client_ip`, memoized (a pure function of short texts and an immutable table)."""
    if len(forwarded_for) <= _CACHED_TEXT_MAX and len(remote_addr) <= _CACHED_TEXT_MAX:
        return _resolve_cached(remote_addr, forwarded_for, trusted)
    return resolve_client_ip(remote_addr, forwarded_for, trusted)


def _in_any(addr: iplib.IPAddress, nets: Sequence[iplib.IPNetwork]) -> bool:
    return any(iplib.contains(n, addr) for n in nets)


def _parse_now(value: Any) -> datetime.datetime:
    if value is None:
        return datetime.datetime.now(datetime.UTC)
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError(f"now: not an RFC 3339 timestamp: {value!r}") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
    raise InputError(f"now: expected a timestamp, not {type(value).__name__}")


@dataclass(slots=True)
class RequestInputs:
    """A request (and what is known about it) as CEL variables plus the raw parts."""

    data: dict[str, Any]  # CEL activation: request, identity, llm, now (+ response)
    body: Any = None  # parsed JSON body (for JSON Schema validation)
    client_ip_given: bool = False
    remote_addr: str = "127.0.0.1"
    forwarded_for: str = ""
    request_id: str = ""
    cache: dict[Any, Any] = field(default_factory=dict)  # per-request memo (resolved client ips)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, trusted_proxies: Sequence[str] = ()) -> RequestInputs:
        """From `{request: {...}, identity: {...}, llm: {...}, response: {...}, now: ...}`."""
        if not raw.keys() <= _INPUT_KEY_SET:
            unknown = set(raw) - _INPUT_KEY_SET
            raise InputError(f"unknown input field(s): {', '.join(sorted(unknown))}")
        req_raw = raw.get("request") or {}
        if not isinstance(req_raw, Mapping):
            raise InputError("request must be a mapping")
        req = {**REQUEST_DEFAULTS, **req_raw}
        headers = normalize_headers(req.get("headers"))
        req["headers"] = headers
        body = req.get("body")
        client_ip_given = req.get("client_ip") not in (None, "")
        remote = str(req.get("remote_addr") or "")
        xff = headers.get("x-forwarded-for", "")
        if client_ip_given:
            try:
                req["client_ip"] = str(iplib.parse_ip(str(req["client_ip"])))
            except ValueError:
                req["client_ip"] = str(req["client_ip"])
        else:
            nets = tuple(iplib.parse_cidr(t) for t in trusted_proxies) if trusted_proxies else ()
            req["client_ip"] = _resolve(remote, xff, nets)
        if "size" not in req_raw:
            try:
                req["size"] = len(_json_bytes(body)) if body is not None else 0
            except (TypeError, ValueError, RecursionError) as exc:
                raise InputError(f"request body is not JSON: {exc}") from exc
        data: dict[str, Any] = {}
        try:
            data["request"] = plain("Request", req)
            data["identity"] = plain("Identity", raw.get("identity"))
            data["llm"] = plain("Llm", raw.get("llm"))
            data["response"] = plain("Response", _response_raw(raw.get("response")))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        except RecursionError as exc:  # a hostile, absurdly nested JSON body
            raise InputError("request body is nested too deeply") from exc
        data["now"] = _parse_now(raw.get("now"))
        return cls(
            data=data,
            body=body,
            client_ip_given=client_ip_given,
            remote_addr=remote,
            forwarded_for=xff,
            request_id=str(req.get("id") or ""),
        )

    def activation(self) -> Any:
        """The CEL activation of these inputs (built once, shared by every policy)."""
        act = self.cache.get("activation")
        if act is None:
            act = self.cache["activation"] = activation_of({**self.data, "variables": {}})
        return act

    def with_response(self, response: Mapping[str, Any] | None) -> RequestInputs:
        try:
            msg = plain("Response", _response_raw(response))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        cache = {k: v for k, v in self.cache.items() if k != "activation"}  # the response changed
        return RequestInputs(
            {**self.data, "response": msg},
            self.body,
            self.client_ip_given,
            self.remote_addr,
            self.forwarded_for,
            self.request_id,
            cache,
        )

    def client_ip_for(self, trusted: tuple[iplib.IPNetwork, ...]) -> str:
        """`client_ip` as resolved with a policy's trusted proxies (the given one wins)."""
        if self.client_ip_given or not trusted:
            return str(self.data["request"]["client_ip"])
        key = ("client_ip", id(trusted))  # a policy's table lives as long as the policy
        if key not in self.cache:
            self.cache[key] = _resolve(self.remote_addr, self.forwarded_for, trusted)
        return str(self.cache[key])


def _response_raw(raw: Any) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InputError("response must be a mapping")
    out = dict(raw)
    if "headers" in out:
        out["headers"] = normalize_headers(out["headers"])
    return out


def _json_bytes(body: Any) -> bytes:
    import json

    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(slots=True)
class ObjectInputs:
    """An object change (studio object hooks) as CEL variables."""

    data: dict[str, Any]
    object_type: str
    operation: str
    value: dict[str, Any]  # the object after the change, as plain data (patches apply here)
    previous: dict[str, Any] | None
    shared: Any = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, now: Any = None) -> ObjectInputs:
        """From `{type, operation, actor: {...}, value: {...}, previous: {...}}`."""
        unknown = set(raw) - set(OBJECT_KEYS)
        if unknown:
            raise InputError(f"unknown object field(s): {', '.join(sorted(unknown))}")
        otype = str(raw.get("type", ""))
        if otype not in OBJECT_MESSAGES:
            raise InputError(f"object type must be one of {', '.join(OBJECT_MESSAGES)}, not {otype!r}")
        operation = str(raw.get("operation", "create"))
        if operation not in ("create", "update", "delete"):
            raise InputError(f"operation must be create, update or delete, not {operation!r}")
        value = raw.get("value") or {}
        previous = raw.get("previous")
        if not isinstance(value, Mapping) or (previous is not None and not isinstance(previous, Mapping)):
            raise InputError("object value and previous must be mappings")
        msg_name = OBJECT_MESSAGES[otype]
        try:
            obj = plain(msg_name, dict(value))
            prev = plain(msg_name, dict(previous)) if previous is not None else None
            actor = plain("Actor", raw.get("actor"))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        data = {
            "object": obj,
            "previous": prev,
            "operation": operation,
            "object_type": otype,
            "actor": actor,
            "now": _parse_now(now),
        }
        return cls(data, otype, operation, dict(value), dict(previous) if previous is not None else None)

    def activation(self) -> Any:
        """The CEL activation of this change (built once, shared by every policy)."""
        if self.shared is None:
            self.shared = activation_of({**self.data, "variables": {}})
        return self.shared


def ip_in(text: str, nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        addr = iplib.parse_ip(text)
    except ValueError:
        return False
    return _in_any(addr, nets)
