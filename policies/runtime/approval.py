"""ObjectApproval: studio object changes; deny > require_approval > mutate, in rule order.

Every rule whose `when` is true applies. Any `deny` rejects the change (the first deny's
message, status 403). Otherwise any `require_approval` parks it (`pending_approval`) with the
union of the approver groups, the largest `minApprovals` and the shortest expiry. `mutate`
patches (JSON merge patch, RFC 7396) apply in rule order to the object; the patched object
is the decision's `mutated` (also when the change is parked: it is what will be applied).
An object type or operation the policy does not cover is not applicable (allow).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celgate.policies.cel import Program
from celgate.policies.runtime.base import Procedure
from celgate.policies.runtime.decision import ApproverSpec, Decision, RuleTrace
from celgate.policies.runtime.inputs import ObjectInputs

DENY_STATUS = 403
PENDING_STATUS = 202


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (returns a new value)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    when: Program
    action: str
    message: str
    message_program: Program | None
    groups: tuple[str, ...]
    min_approvals: int
    expires_after_s: float | None
    patch: dict[str, Any] | None


class ObjectApprovalProcedure(Procedure):
    kind = "ObjectApproval"

    def __init__(self, plan: Mapping[str, Any]) -> None:
        super().__init__(plan)
        spec = plan["spec"]
        self.objects = tuple(spec.get("objects", ()))
        self.operations = tuple(spec.get("operations", ("create", "update", "delete")))
        self.rules: list[_Rule] = []
        for raw in spec.get("rules", ()):
            name = raw["name"]
            msg_src = raw.get("message_expression")
            self.rules.append(
                _Rule(
                    name=name,
                    when=self.compile(raw["when"], "when", f"rules.{name}.when"),
                    action=raw["action"],
                    message=raw.get("message") or _default_message(raw["action"], self.name, name),
                    message_program=self.compile(msg_src, "message", f"rules.{name}.messageExpression")
                    if msg_src
                    else None,
                    groups=tuple(raw.get("approvers", ())),
                    min_approvals=int(raw.get("min_approvals", 1)),
                    expires_after_s=raw.get("expires_after_s"),
                    patch=raw.get("patch"),
                )
            )

    def rule_names(self) -> list[str]:
        """The coverage items: every rule; each fires when its `when` is true."""
        return [r.name for r in self.rules]

    def decide(self, inputs: ObjectInputs, *, trace: bool = False) -> Decision:
        if (
            self.objects and inputs.object_type not in self.objects
        ) or inputs.operation not in self.operations:
            return self.conclude(
                None,
                "allow",
                not_applicable=True,
                reason=f"{inputs.operation} of {inputs.object_type} is not covered",
            )
        ev = self.begin(inputs.data, trace, inputs)
        if ev.error is not None:
            return self.conclude(ev, "deny")
        applying: list[_Rule] = []
        for rule in self.rules:
            value = ev.run(rule.when, rule.name, bool)
            if value is None:
                return self.conclude(ev, "deny")
            if trace:
                ev.trace.append(RuleTrace(rule.name, bool(value), value=value, detail=rule.action))
            if value:
                applying.append(rule)
        mutated: dict[str, Any] | None = None
        patches = [r for r in applying if r.action == "mutate" and r.patch is not None]
        if patches:
            mutated = inputs.value
            for rule in patches:
                mutated = merge_patch(mutated, rule.patch)
        denies = [r for r in applying if r.action == "deny"]
        if denies:
            message = self._message(ev, denies[0])
            return self.conclude(
                ev,
                "deny",
                rule=denies[0].name,
                reason=message,
                status=DENY_STATUS,
                message=message,
                body={
                    "error": {
                        "type": "policy_violation",
                        "policy": self.name,
                        "rule": denies[0].name,
                        "message": message,
                    }
                },
            )
        approvals = [r for r in applying if r.action == "require_approval"]
        if approvals:
            groups: list[str] = []
            for r in approvals:
                groups.extend(g for g in r.groups if g not in groups)
            expiries = [r.expires_after_s for r in approvals if r.expires_after_s is not None]
            approvers = ApproverSpec(
                tuple(groups), max(r.min_approvals for r in approvals), min(expiries) if expiries else None
            )
            message = self._message(ev, approvals[0])
            return self.conclude(
                ev,
                "pending_approval",
                rule=approvals[0].name,
                reason=message,
                status=PENDING_STATUS,
                message=message,
                mutated=mutated,
                approvers=approvers,
            )
        if patches:
            return self.conclude(ev, "allow", rule=patches[0].name, reason="patched", mutated=mutated)
        return self.conclude(ev, "allow", reason="no rule applies")

    def _message(self, ev: Any, rule: _Rule) -> str:
        if rule.message_program is None:
            return rule.message
        saved = ev.error, ev.error_rule
        value = ev.run(rule.message_program, f"{rule.name}.messageExpression", str)
        ev.error, ev.error_rule = saved
        return value if isinstance(value, str) and value else rule.message


def _default_message(action: str, policy: str, rule: str) -> str:
    if action == "require_approval":
        return f"change needs approval ({policy}/{rule})"
    if action == "deny":
        return f"change rejected by {policy}/{rule}"
    return ""
