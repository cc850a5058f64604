"""Validate messages against the CDDL in docs/mqtt.md (the contract is the single source).

Uses pycddl (a CDDL validator) on the ```cddl blocks of docs/mqtt.md, so a change to the
documented contract changes what the hub accepts, and a unit that drifts from it is caught.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import cbor2

from firmware.paths import REPO_ROOT

CONTRACT = REPO_ROOT / "docs" / "mqtt.md"

# topic suffix -> CDDL rule
KIND_RULES = {
    "status": "status",
    "birth": "birth",
    "events": "event",
    "metrics": "metrics",
    "reply": "reply",
    "config/state": "config-state",
    "config/set": "command",
    "tracks": "tracks",
    "store/tracks": "store-tracks",
    "store/events": "event",  # the hub's own, under the reserved unit level "store"
}

# command -> CDDL rule of its reply's result (the others are `any`)
RESULT_RULES = {"config/set": "config-set-result"}


def cddl_text(path: Path = CONTRACT) -> str:
    """Every ```cddl block of the contract, joined."""
    if not path.exists():
        raise FileNotFoundError(f"contract {path} not found (vigil-hub runs from a checkout)")
    blocks = re.findall(r"```cddl\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    if not blocks:
        raise ValueError(f"{path}: no ```cddl blocks")
    return "\n".join(blocks)


def rule_names(text: str) -> list[str]:
    return re.findall(r"^([A-Za-z][\w-]*)\s*=", text, re.M)


def rule_subset(root: str, text: str | None = None) -> str:
    """The CDDL of ``root`` and the rules it uses, ``root`` first: a small schema validates
    much faster (pycddl parses the schema on every call)."""
    text = cddl_text() if text is None else text
    starts = [(m.group(1), m.start()) for m in re.finditer(r"^([A-Za-z][\w-]*)\s*=", text, re.M)]
    bodies = {
        name: text[start : starts[i + 1][1] if i + 1 < len(starts) else len(text)]
        for i, (name, start) in enumerate(starts)
    }
    todo, keep = [root], []
    while todo:
        name = todo.pop()
        if name in keep or name not in bodies:
            continue
        keep.append(name)
        body = re.sub(r";[^\n]*", "", bodies[name].split("=", 1)[1])
        todo += [w for w in re.findall(r"[A-Za-z][\w-]*", body) if w in bodies]
    return "\n".join(bodies[n].strip() for n in keep) + "\n"


@cache
def _schema(rule: str, path: Path = CONTRACT):
    import pycddl

    text = cddl_text(path)
    if rule not in rule_names(text):
        raise KeyError(f"no CDDL rule {rule!r} in {path}")
    return pycddl.Schema(rule_subset(rule, text))


class Validator:
    """``check(kind, payload) -> problems`` (empty list when the message is valid)."""

    def __init__(self, path: Path = CONTRACT):
        self.path = path
        _schema("status", path)  # fail early when the contract or pycddl is missing

    def validate_rule(self, rule: str, payload: bytes) -> list[str]:
        try:
            _schema(rule, self.path).validate_cbor(payload)
        except Exception as e:  # pycddl.ValidationError; any decoding error alike
            return [f"{rule}: {str(e).strip()}"]
        return []

    def check(self, kind: str, payload: bytes) -> list[str]:
        if kind.startswith("cmd/"):
            problems = self.validate_rule("command", payload)
            if not problems:
                problems = self._check_body(kind.removeprefix("cmd/"), payload)
            return problems
        rule = KIND_RULES.get(kind)
        if rule is None:
            return [f"topic suffix {kind!r} is not in the contract"]
        problems = self.validate_rule(rule, payload)
        if kind == "config/set" and not problems:
            problems = self._check_body("config-set", payload)
        if kind == "reply" and not problems:
            problems = self._check_result(payload)
        return problems

    def _check_result(self, payload: bytes) -> list[str]:
        """A reply's result, for the commands whose result the contract spells out."""
        reply = cbor2.loads(payload)
        rule = RESULT_RULES.get(reply.get("cmd"))
        if rule is None or not reply.get("ok"):
            return []
        return self.validate_rule(rule, cbor2.dumps(reply.get("result")))

    def _check_body(self, name: str, payload: bytes) -> list[str]:
        body = cbor2.loads(cbor2.loads(payload)["body"])
        rule = f"args-{name}"
        text = cddl_text(self.path)
        if rule not in rule_names(text):
            return [f"unknown command {name!r}"]
        args = body.get("args", {})
        # pycddl accepts any map for an empty map rule `{ }`: check that case here.
        if re.search(rf"^{re.escape(rule)}\s*=\s*\{{\s*\}}", text, re.M) and args:
            return [f"{rule}: takes no arguments, got {sorted(map(str, args))}"]
        return self.validate_rule(rule, cbor2.dumps(args))
