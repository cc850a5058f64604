"""Hub commands: cheap checks (size, topic, CBOR shape, freshness, counter), then the
signature, then the unit's action.

``screen`` runs the cheap checks on paho's thread, so a flood of unsigned or malformed
commands never reaches the bounded command queue nor costs a signature verification; what
passes is verified and run by ``run`` on the link's command worker. Every refusal is counted
by code and reported in metrics; over the network its reply (and log line) is rate limited,
so a flood gets a few replies a second. ``handle`` (tools, tests) answers every call once.
Nothing here raises to the caller.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from firmware.config import ConfigError, parse_text
from firmware.config.base import config_hash
from firmware.link import messages
from firmware.link.config import LinkConfig
from firmware.link.control import UnitControl
from firmware.link.guard import keeps_the_link
from firmware.link.limits import KeyedBuckets, LogLimiter
from firmware.link.outbox import Outbox
from firmware.link.signing import MAX_COUNTER, load_public_key, loads_exact, verify


class CommandLink(Protocol):
    """What command handling needs of the hub link (firmware.link.client.Link)."""

    cfg: LinkConfig
    topics: messages.Topics
    outbox: Outbox
    site: str
    unit: str
    session: int

    def resolve(self, p: str) -> str: ...

    def send(self, topic: str, payload: bytes, retain: bool = False) -> bool: ...

    def update_birth(self, **fields: Any) -> None: ...


log = logging.getLogger("vigil.link.commands")

# Refusal codes (docs/mqtt.md lists them); "rejected"/"invalid_config"/"failed" come after
# a command was accepted and the unit could not do it.
REFUSALS = (
    "too_large",
    "malformed",
    "no_key",
    "unsigned",
    "bad_signature",
    "stale",
    "replayed",
    "unknown_command",
    "bad_args",
    "busy",
    "bad_counter",
)
# A counter may run at most this far (one day, in the hub's microseconds) ahead of both the
# last accepted one and the unit's clock: vigil-hub's counter is microseconds since 1970.
COUNTER_AHEAD_US = 86_400 * 10**6
COUNTER_KEY = "cmd_ctr"


class Pending(NamedTuple):
    """A command that passed the cheap checks, waiting for its signature to be verified."""

    topic: str
    name: str
    body: bytes
    sig: bytes
    rid: str
    ctr: int
    args: Any


class Refused(Exception):
    def __init__(self, code: str, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.code, self.message, self.problems = code, message, problems


# name -> {arg: (types, required, check or None, description)}
_Num = (int, float)
ARGS: dict[str, dict[str, tuple]] = {
    "arm": {"zone": (str, False, None)},
    "disarm": {"zone": (str, False, None)},
    "config/set": {"text": (str, True, None)},
    "deterrent_test": {
        "name": (str, False, None),
        "seconds": (_Num, False, lambda v: 0 < v <= 30 or "must be > 0 and <= 30"),
    },
    "mute": {"minutes": (_Num, True, lambda v: 0 <= v <= 1440 or "must be 0..1440")},
    "diagnostics": {"cmd": (str, False, None), "args": (dict, False, None)},
    "rebirth": {},
    "retention_purge": {
        "older_than_days": (_Num, False, lambda v: 0 <= v <= 3650 or "must be 0..3650")
    },
    "legal_hold": {"incident_id": (str, True, None), "hold": (bool, False, None)},
}


class CommandProcessor:
    """Checks and runs the commands that arrive for one unit."""

    def __init__(
        self, link: CommandLink, control: UnitControl, now: Callable[[], float] = time.time
    ):
        self.link = link
        self.control = control
        self.cfg = link.cfg
        self.now = now
        self.stats_counter: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.key = None
        self.key_problem: str | None = None
        if self.cfg.hub_public_key:
            try:
                self.key = load_public_key(link.resolve(self.cfg.hub_public_key))
            except (OSError, ValueError) as e:
                self.key_problem = f"hub public key unusable: {e}"
                log.error("link: %s; every command will be refused", self.key_problem)
        else:
            self.key_problem = "no hub public key configured ([link] hub_public_key)"
            log.warning("link: %s; every hub command will be refused", self.key_problem)
        self.last_config_hash: str | None = None
        self._replies = KeyedBuckets(
            self.cfg.command_refusal_replies_per_s, max(1.0, self.cfg.command_refusal_replies_per_s)
        )
        self._logs = LogLimiter(log)
        self._last_ctr = self._load_counter()

    def names(self) -> list[str]:
        return sorted(ARGS)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.stats_counter)

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats_counter[what] += 1

    # -- entry points -----------------------------------------------------------------------

    def busy(self, p: Pending) -> None:
        """The command queue is full: refuse (the reply is rate limited like the others)."""
        r = Refused("busy", f"command queue full ({self.cfg.command_queue} waiting)")
        self._refuse(r, p.rid, p.name, True)

    def handle(self, topic: str, payload: bytes) -> dict[str, Any]:
        """Check and run one command; publishes and returns the reply (always one)."""
        pending = self.screen(topic, payload, limited=False)
        if isinstance(pending, dict):
            return pending
        return self.run(pending, limited=False)

    def screen(self, topic: str, payload: bytes, limited: bool = True) -> Pending | dict:
        """The cheap checks, before any signature is verified: size, topic, CBOR shape, key,
        signature present, freshness, counter (not yet advanced). A refusal is counted and
        answered (with ``limited``, only as often as the reply budget allows: a flood gets a
        few replies a second, not one each) and returned; what passes comes back as a
        ``Pending`` for ``run`` (on the command worker)."""
        name = self._name(topic)
        try:
            return self._screen(topic, name, payload)
        except Refused as r:
            return self._refuse(r, payload, name, limited)
        except Exception as e:  # never raise to paho's thread
            self._count("failed")
            log.exception("link: checking command %s failed", name)
            err = {"code": "failed", "message": f"{type(e).__name__}: {e}"}
            return self._reply(request_id_of(payload), name, err, limited=limited)

    def run(self, p: Pending, limited: bool = True) -> dict[str, Any]:
        """Verify the signature, take the counter, check the arguments and act (a refusal's
        reply is rate limited with ``limited``)."""
        try:
            if not verify(self.key, p.topic, p.body, p.sig):  # type: ignore[arg-type]
                raise Refused(
                    "bad_signature", "signature does not match the hub key for this topic"
                )
            self._take_counter(p.ctr)
            if not isinstance(p.args, dict):
                raise Refused("bad_args", "args must be a map")
            args = _check_args(p.name, p.args)
        except Refused as r:
            return self._refuse(r, p.rid, p.name, limited)
        except Exception as e:  # e.g. the counter store failed: still one clear reply
            self._count("failed")
            log.exception("link: checking command %s failed", p.name)
            err = {"code": "failed", "message": f"{type(e).__name__}: {e}"}
            return self._reply(p.rid, p.name, err)
        name, request_id = p.name, p.rid
        try:
            result = self._run(name, args)
        except Refused as r:
            self._count(r.code)
            return self._reply(request_id, name, _error(r))
        except ConfigError as e:
            self._count("invalid_config")
            err = {"code": "invalid_config", "message": str(e), "problems": e.problems}
            return self._reply(request_id, name, err)
        except (ValueError, KeyError) as e:
            self._count("rejected")
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            return self._reply(request_id, name, {"code": "rejected", "message": str(msg)})
        except Exception as e:
            self._count("failed")
            log.exception("link: command %s failed", name)
            return self._reply(
                request_id, name, {"code": "failed", "message": f"{type(e).__name__}: {e}"}
            )
        self._count("ok")
        return self._reply(request_id, name, None, result)

    def _refuse(
        self, r: Refused, rid: str | bytes | None, name: str, limited: bool
    ) -> dict[str, Any]:
        """Count, log (limited) and answer (limited) a refusal; ``rid`` may be the payload,
        whose request id is only read when a reply is actually sent (a flood costs less)."""
        self._count(r.code)
        self._logs.log(
            logging.INFO, r.code, "link: refused command %s (%s): %s", name, r.code, r.message
        )
        if limited and not self._replies.take(r.code):
            self._count("replies_suppressed")  # counted, not answered: a flood gets no echo
            return {"id": None, "cmd": name, "ok": False, "error": _error(r)}
        if isinstance(rid, bytes):
            rid = request_id_of(rid)
        return self._reply(rid, name, _error(r))

    # -- checks -----------------------------------------------------------------------------

    def _name(self, topic: str) -> str:
        base = self.link.topics.base + "/"
        rest = topic[len(base) :] if topic.startswith(base) else topic
        return rest.removeprefix("cmd/")[:64]

    def _screen(self, topic: str, name: str, payload: bytes) -> Pending:
        if len(payload) > self.cfg.command_max_bytes:
            raise Refused(
                "too_large", f"{len(payload)} bytes; the limit is {self.cfg.command_max_bytes}"
            )
        try:
            outer = loads_exact(payload)
        except Exception as e:
            raise Refused("malformed", f"payload is not one CBOR item: {_short(e)}") from None
        if not isinstance(outer, dict):
            raise Refused("malformed", "payload must be a CBOR map {v, body, sig}")
        if outer.get("v") != 1:
            raise Refused("malformed", f"unsupported version v={_short(outer.get('v'))}")
        extra = set(outer) - {"v", "body", "sig"}
        if extra:
            raise Refused("malformed", f"unknown key(s) {sorted(map(str, extra))[:5]}")
        body = outer.get("body")
        if not isinstance(body, bytes):
            raise Refused("malformed", "body must be a byte string (the CBOR command body)")
        if self.key is None:
            raise Refused("no_key", self.key_problem or "no hub key")
        sig = outer.get("sig")
        if sig is None:
            raise Refused("unsigned", "the command carries no signature")
        if not isinstance(sig, bytes) or len(sig) != 64:
            raise Refused("bad_signature", "sig must be a 64-byte Ed25519 signature")
        try:
            cmd = loads_exact(body)
        except Exception as e:
            raise Refused("malformed", f"body is not one CBOR item: {_short(e)}") from None
        if not isinstance(cmd, dict) or cmd.get("v") != 1:
            raise Refused("malformed", "body must be a map with v: 1")
        extra = set(cmd) - {"v", "id", "ts", "ctr", "args"}
        if extra:
            raise Refused("malformed", f"unknown key(s) in body {sorted(map(str, extra))[:5]}")
        rid, ts, ctr, args = cmd.get("id"), cmd.get("ts"), cmd.get("ctr"), cmd.get("args", {})
        if not _request_id_ok(rid):
            raise Refused("malformed", "id must be a text string of 1..64 bytes (UTF-8)")
        if not _is_num(ts) or not math.isfinite(ts):
            raise Refused("malformed", "ts must be a finite number (Unix seconds)")
        if not isinstance(ctr, int) or isinstance(ctr, bool) or not 0 <= ctr <= MAX_COUNTER:
            raise Refused("malformed", f"ctr must be an unsigned integer <= {MAX_COUNTER}")
        now = self.now()
        age = now - ts
        if abs(age) > self.cfg.command_max_age_s:
            raise Refused(
                "stale",
                f"timestamp is {age:+.1f} s from the unit's clock "
                f"(window +-{self.cfg.command_max_age_s:g} s)",
            )
        self._check_counter(ctr, now)
        if name not in ARGS:
            raise Refused("unknown_command", f"no command {name!r}; known: {', '.join(ARGS)}")
        return Pending(topic, name, body, sig, rid, ctr, args)

    def _check_counter(self, ctr: int, now: float) -> None:
        """Refuse a counter not above the last accepted one (a replay) or more than
        ``COUNTER_AHEAD_US`` above both it and the unit's clock in microseconds (a counter
        near 2^63 would otherwise lock out every later command)."""
        last = self._last_ctr
        if ctr <= last:
            raise Refused("replayed", f"counter {ctr} is not above the last accepted {last}")
        horizon = max(last, int(now * 1e6)) + COUNTER_AHEAD_US
        if ctr > horizon:
            raise Refused(
                "bad_counter",
                f"counter {ctr} is more than {COUNTER_AHEAD_US} above both the last accepted "
                f"({last}) and the unit's clock in microseconds; the hub's counter must be "
                "max(last + 1, microseconds since 1970)",
            )

    def _take_counter(self, ctr: int) -> None:
        self._check_counter(ctr, self.now())
        if not self.link.outbox.advance(COUNTER_KEY, ctr):
            last = self.link.outbox.get(COUNTER_KEY)
            self._last_ctr = max(self._last_ctr, last)
            raise Refused("replayed", f"counter {ctr} is not above the last accepted {last}")
        self._last_ctr = ctr

    def _load_counter(self) -> int:
        """The last accepted counter; one stored beyond the horizon (accepted before counters
        were bounded) is brought back to the clock, so the unit is not locked out for good."""
        try:
            last = self.link.outbox.get(COUNTER_KEY)
        except Exception:
            log.exception("link: cannot read the command counter")
            return 0
        now_us = int(self.now() * 1e6)
        if last > now_us + COUNTER_AHEAD_US:
            log.warning(
                "link: the stored command counter %d is far beyond the clock; reset to %d",
                last,
                now_us,
            )
            try:
                self.link.outbox.set_state(COUNTER_KEY, now_us)
            except Exception:
                log.exception("link: cannot reset the command counter")
            return now_us
        return last

    # -- actions ----------------------------------------------------------------------------

    def _run(self, name: str, args: dict) -> Any:
        c = self.control
        if name == "arm":
            c.arm(args.get("zone"))
            return {"armed": args.get("zone") or "unit"}
        if name == "disarm":
            c.disarm(args.get("zone"))
            return {"disarmed": args.get("zone") or "unit"}
        if name == "config/set":
            return self._config_set(args["text"])
        if name == "deterrent_test":
            return c.deterrent_test(args.get("name"), float(args.get("seconds", 2.0)))
        if name == "mute":
            return c.mute(float(args["minutes"]))
        if name == "diagnostics":
            return c.diagnostics(args.get("cmd", "status"), args.get("args"))
        if name == "rebirth":
            fields = c.rebirth() or {}
            self.link.update_birth(**fields)
            return {"session": self.link.session}
        if name == "retention_purge":
            days = args.get("older_than_days")
            return c.retention_purge(None if days is None else float(days))
        if name == "legal_hold":
            return c.legal_hold(args["incident_id"], bool(args.get("hold", True)))
        raise Refused("unknown_command", f"no command {name!r}")  # pragma: no cover

    def _config_set(self, text: str) -> dict[str, Any]:
        new = parse_text(text, "config/set")  # ConfigError -> invalid_config with every problem
        site, unit = self.link.site, self.link.unit
        if (new.site.site_id, new.site.unit_id) != (site, unit):
            raise ValueError(
                f"site.site_id/unit_id must stay {site}/{unit} (got "
                f"{new.site.site_id}/{new.site.unit_id}); re-provision the unit to rename it"
            )
        keeps_the_link(self.cfg, new.link, self.key, self.link.resolve)
        result = self.control.apply_config(text) or {}
        digest = config_hash(text)
        self.last_config_hash = digest
        self.link.send(self.link.topics.config_state, self._state_payload(text), retain=True)
        self.link.update_birth(config_hash=digest)
        return {"config_hash": digest, **messages.plain(result)}

    def _state_payload(self, text: str) -> bytes:
        return messages.encode({"time": self.now(), "config_hash": config_hash(text), "text": text})

    def config_state_payload(self) -> bytes | None:
        """The retained config/state for the config in effect (published on every connect)."""
        try:
            text = self.control.config_text()
        except Exception:
            log.exception("link: cannot read the config in effect")
            return None
        return self._state_payload(text) if isinstance(text, str) else None

    def _reply(
        self,
        request_id: str | None,
        name: str,
        error: dict | None,
        result: Any = None,
        limited: bool = False,
    ) -> dict[str, Any]:
        reply: dict[str, Any] = {"id": request_id, "cmd": name, "ok": error is None}
        reply["time"] = self.now()
        if error is None:
            reply["result"] = messages.plain(result)
        else:
            reply["error"] = error
        if limited and error is not None and not self._replies.take(error["code"]):
            self._count("replies_suppressed")  # counted, not answered: a flood gets no echo
            return reply
        self.link.send(self.link.topics.reply, messages.encode(reply))
        return reply


def request_id_of(payload: bytes) -> str | None:
    """The request id of a refused command when it can be read (so the hub can match it)."""
    try:
        outer = loads_exact(payload)
        cmd = loads_exact(outer["body"])
        rid = cmd["id"]
    except Exception:
        return None
    return rid if _request_id_ok(rid) else None


def _request_id_ok(rid: Any) -> bool:
    return isinstance(rid, str) and 1 <= len(rid.encode("utf-8", "replace")) <= 64


def _check_args(name: str, args: dict) -> dict:
    spec = ARGS[name]
    unknown = [str(k) for k in args if k not in spec]
    if unknown:
        raise Refused("bad_args", f"{name}: unknown argument(s) {sorted(unknown)[:5]}")
    problems = []
    for arg, (types, required, check) in spec.items():
        if arg not in args:
            if required:
                problems.append(f"{arg}: required")
            continue
        v = args[arg]
        ok_type = isinstance(v, types) and not (isinstance(v, bool) and types is not bool)
        if not ok_type or (isinstance(v, float) and not math.isfinite(v)):
            problems.append(f"{arg}: expected {_type_name(types)}, got {type(v).__name__}")
            continue
        if isinstance(v, str) and not 1 <= len(v) <= 4096 and arg != "text":
            problems.append(f"{arg}: must be 1..4096 characters")
            continue
        if check is not None:
            verdict = check(v)
            if verdict is not True:
                problems.append(f"{arg}: {verdict}")
    if problems:
        raise Refused("bad_args", f"{name}: {'; '.join(problems)}", problems)
    return args


def _type_name(types: Any) -> str:
    return "number" if types == _Num else {str: "text", bool: "bool"}.get(types, str(types))


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 120 else s[:117] + "..."


def _error(r: Refused) -> dict[str, Any]:
    err: dict[str, Any] = {"code": r.code, "message": r.message}
    if r.problems:
        err["problems"] = r.problems
    return err
