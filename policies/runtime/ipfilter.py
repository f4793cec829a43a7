"""IPFilter: allow/deny by client address, with trusted-proxy resolution of X-Forwarded-For.

The ranges are precomputed into per-family (network, mask) integer tables when the plan is
built; deciding is a few integer operations, no CEL (only `match`, if any, is CEL).
Deny wins over allow; an empty `allow` allows everything not denied. An unknown client
address (unparseable) is in no range: denied when `allow` is non-empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celgate.policies.cel import iplib
from celgate.policies.runtime.base import Evaluation, PlanError, Procedure
from celgate.policies.runtime.decision import Decision, RuleTrace
from celgate.policies.runtime.inputs import RequestInputs

NOT_ALLOWED = "not-allowed"  # the rule name when the client is in no allow range
Table = tuple[tuple[int, int, int, str], ...]  # (version, network int, mask int, text)


def _networks(texts: list[str], where: str) -> tuple[iplib.IPNetwork, ...]:
    """Ranges in CIDR form; a bare address is its own /32 or /128."""
    nets = []
    for text in texts:
        full = text if "/" in text else f"{text}/{128 if ':' in text else 32}"
        try:
            nets.append(iplib.parse_cidr(full))
        except ValueError as exc:
            raise PlanError(f"{where}: invalid range {text!r}: {exc}") from exc
    return tuple(nets)


def _table(texts: list[str], where: str) -> Table:
    nets = _networks(texts, where)
    return tuple(
        (net.version, int(net.network_address), int(net.netmask), text)
        for net, text in zip(nets, texts, strict=True)
    )


def _find(table: Table, version: int, value: int) -> str | None:
    for v, network, mask, text in table:
        if v == version and value & mask == network:
            return text
    return None


class IPFilterProcedure(Procedure):
    kind = "IPFilter"

    def __init__(self, plan: Mapping[str, Any]) -> None:
        super().__init__(plan)
        spec = plan["spec"]
        self.trusted = _networks(spec.get("trusted_proxies", []), "trustedProxies")
        self.allow = _table(spec.get("allow", []), "allow")
        self.deny = _table(spec.get("deny", []), "deny")
        self.status = int(spec.get("status", 403))
        self.message = str(spec.get("message", "forbidden"))

    def rule_names(self) -> list[str]:
        """The coverage items: each deny range, each allow range, and the not-allowed fallthrough."""
        names = [f"deny {r[3]}" for r in self.deny] + [f"allow {r[3]}" for r in self.allow]
        return [*names, NOT_ALLOWED] if self.allow else names

    def decide(self, inputs: RequestInputs, *, trace: bool = False) -> Decision:
        rid = inputs.request_id
        # Without a match and a trace there is nothing to evaluate or record: no Evaluation
        # (conclude(None, ...) yields the same Decision: no error, an empty trace).
        ev = self.begin(inputs.data, trace, inputs) if self.match is not None or trace else None
        if self.match is not None:
            assert ev is not None
            matched = self.matches(ev)
            if matched is None:
                return self.conclude(ev, "deny", request_id=rid)
            if not matched:
                return self.conclude(
                    ev, "allow", not_applicable=True, reason="match is false", request_id=rid
                )
        client = inputs.client_ip_for(self.trusted)
        version, value = 0, 0
        try:
            addr = iplib.parse_ip(client)
            version, value = addr.version, int(addr)
        except ValueError:
            pass  # unknown address: in no range
        hit = _find(self.deny, version, value)
        if ev is not None and trace:
            self._trace_ranges(ev, "deny", self.deny, client, hit)
        if hit is not None:
            return self._deny(ev, rid, f"deny {hit}", f"client_ip {client} is in deny range {hit}", client)
        if not self.allow:
            return self.conclude(
                ev, "allow", reason=f"client_ip {client} is in no deny range", request_id=rid
            )
        hit = _find(self.allow, version, value)
        if ev is not None and trace:
            self._trace_ranges(ev, "allow", self.allow, client, hit)
        if hit is None:
            shown = client or "(unknown)"
            return self._deny(ev, rid, NOT_ALLOWED, f"client_ip {shown} is in no allow range", client)
        reason = f"client_ip {client} is in allow range {hit}"
        return self.conclude(ev, "allow", rule=f"allow {hit}", reason=reason, request_id=rid)

    @staticmethod
    def _trace_ranges(ev: Evaluation, which: str, table: Table, client: str, hit: str | None) -> None:
        for *_, text in table:
            detail = f"client_ip is in {text}" if text == hit else f"client_ip is not in {text}"
            ev.trace.append(RuleTrace(f"{which} {text}", text == hit, value=client, detail=detail))

    def _deny(self, ev: Evaluation | None, rid: str, rule: str, reason: str, client: str) -> Decision:
        if ev is not None and ev.tracing and rule == NOT_ALLOWED:  # range hits are already in the trace
            ev.trace.append(RuleTrace(rule, True, value=client, detail=reason))
        body = {"error": {"type": "forbidden", "policy": self.name, "message": self.message}}
        return self.conclude(
            ev,
            "deny",
            rule=rule,
            reason=reason,
            status=self.status,
            message=self.message,
            body=body,
            request_id=rid,
        )
