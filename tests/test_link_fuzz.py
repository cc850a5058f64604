"""Fuzzing the command path: 10,000+ generated payloads (random bytes, random CBOR, signed
envelopes with random contents, bit-flipped, truncated and padded genuine commands) on
random command topics.
Each gets exactly one reply that satisfies the contract; nothing crashes; the unit keeps
working afterwards."""

from __future__ import annotations

import itertools
import os
import random
import time

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.link import Link
from firmware.link.commands import ARGS, REFUSALS
from firmware.link.config import LinkConfig
from firmware.link.signing import Signer, signing_input
from tests.test_link_commands import UnitDouble
from tools.hub.contract import rule_subset

pycddl = pytest.importorskip("pycddl")

# Inputs = hypothesis examples x (1 generated + MUTANTS derived by truncation, bit flips and
# inserted bytes): cheap mutants keep 10,000+ inputs within seconds on a small machine.
INPUTS = int(os.environ.get("VIGIL_FUZZ_INPUTS", "10000"))
MUTANTS = 8
BASE = "vigil/s1/u1"
NAMES = [*ARGS, "self_destruct", "", "cmd", "../status", "a" * 80]

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
    | st.binary(max_size=24),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=6,
)

plausible_args = st.dictionaries(
    st.sampled_from(
        [
            "zone",
            "text",
            "name",
            "seconds",
            "minutes",
            "older_than_days",
            "incident_id",
            "hold",
            "x",
        ]
    ),
    cbor_values,
    max_size=3,
)


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    signer = Signer.generate(d / "hub.pem", d / "hub.pub.pem")
    control = UnitDouble()
    link = Link(
        LinkConfig(mqtt=None, hub_public_key=str(d / "hub.pub.pem"), outbox_sync="interval"),
        site="s1",
        unit="u1",
        data_dir=d / "unit",
        birth={},
        control=control,
    )
    sent: list[tuple[str, bytes]] = []
    link.send = lambda topic, payload, retain=False: sent.append((topic, payload)) or True
    yield link, signer, control, sent
    link.stop()


def test_ten_thousand_generated_commands(unit):
    link, signer, control, sent = unit
    proc = link._commands
    counter = itertools.count(time.time_ns() // 1000)
    reply_schema = pycddl.Schema(rule_subset("reply"))
    seen = {"n": 0, "codes": set()}

    def signed(topic: str, body: dict) -> bytes:
        raw = cbor2.dumps(body)
        return cbor2.dumps({"v": 1, "body": raw, "sig": signer.key.sign(signing_input(topic, raw))})

    @st.composite
    def inputs(draw):
        name = draw(st.sampled_from(NAMES))
        topic = f"{BASE}/config/set" if name == "config/set" else f"{BASE}/cmd/{name}"
        kind = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 5, 5]))
        if kind == 5:  # genuine, fresh and well-formed: only the name and args are random
            name = draw(st.sampled_from(NAMES))
            topic = f"{BASE}/config/set" if name == "config/set" else f"{BASE}/cmd/{name}"
            args = draw(
                plausible_args | st.dictionaries(st.text(max_size=8), cbor_values, max_size=3)
            )
            # a re-signed damaged body may have set a far-future counter: like a real hub,
            # stay above the highest counter the unit accepted
            ctr = max(next(counter), link.outbox.get("cmd_ctr") + 1)
            body = {"v": 1, "id": "deep", "ts": time.time(), "ctr": ctr, "args": args}
            return topic, signed(topic, body)
        if kind == 0:
            return topic, draw(st.binary(max_size=200))
        if kind == 1:
            return topic, cbor2.dumps(draw(cbor_values))
        body = {
            "v": draw(st.sampled_from([1, 1, 1, 2, "1"])),
            "id": draw(st.text(max_size=70) | st.just("req")),
            "ts": draw(st.sampled_from([time.time(), time.time() - 3600]) | cbor_values),
            "ctr": draw(
                st.just(next(counter))
                | st.integers(-5, 10**6)  # replayed
                | st.integers(2**63, 2**64)  # out of range
                | cbor_values.filter(lambda v: not isinstance(v, int))
            ),
            "args": draw(plausible_args | cbor_values),
        }
        for key in draw(st.sets(st.sampled_from(list(body)), max_size=2)):
            del body[key]
        if kind == 2:
            return topic, signed(topic, body)
        payload = bytearray(signed(topic, body))
        if kind == 3:  # flip one bit of a genuine command
            i = draw(st.integers(0, len(payload) * 8 - 1))
            payload[i // 8] ^= 1 << (i % 8)
            return topic, bytes(payload)
        return topic, signed(f"{BASE}/cmd/arm", body)  # signed for another topic

    def flip(data: bytes, rnd: random.Random) -> bytes:
        out = bytearray(data or b"\0")
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(out))
            out[i] ^= 1 << rnd.randrange(8)
        return bytes(out)

    def mutants(topic: str, payload: bytes, seed: int) -> list[bytes]:
        rnd = random.Random(seed)
        at = rnd.randrange(len(payload) + 1)
        out = [
            payload[:at],
            flip(payload, rnd),
            payload[:at] + rnd.randbytes(rnd.randint(1, 16)) + payload[at:],
        ]
        try:  # damage the body, then sign it properly: reaches the body checks
            body = cbor2.loads(payload)["body"]
            assert isinstance(body, bytes)
        except Exception:
            body = cbor2.dumps({"v": 1, "id": "m", "ts": time.time(), "ctr": next(counter)})
        for damaged in (flip(body, rnd), body[: rnd.randrange(len(body) + 1)], body + b"\x00"):
            sig = signer.key.sign(signing_input(topic, damaged))
            out.append(cbor2.dumps({"v": 1, "body": damaged, "sig": sig}))
        # a fresh, well-formed body under a wrong signature: passes the cheap checks (which
        # now run before the signature) and must fail the signature check
        fresh = cbor2.dumps({"v": 1, "id": "f", "ts": time.time(), "ctr": next(counter)})
        out.append(cbor2.dumps({"v": 1, "body": fresh, "sig": rnd.randbytes(64)}))
        out.append(payload)  # sent again: a replay must never be obeyed twice
        return out[:MUTANTS]

    @settings(
        max_examples=-(-INPUTS // (1 + MUTANTS)),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(), st.integers(0, 2**32))
    def one(case, seed):
        topic, payload = case
        first_ok = None
        for data in [payload, *mutants(topic, payload, seed)]:
            before = len(sent)
            reply = proc.handle(topic, data)
            if data is payload:
                if first_ok is None:
                    first_ok = reply["ok"]
                else:  # the replay
                    assert not reply["ok"], "a replayed command was obeyed"
            assert len(sent) == before + 1 and sent[-1][0] == f"{BASE}/reply"
            reply_schema.validate_cbor(sent[-1][1])
            if reply["ok"]:
                seen["codes"].add("ok")
            else:
                code = reply["error"]["code"]
                assert code in REFUSALS or code in ("invalid_config", "rejected"), reply
                assert reply["error"]["message"]
                seen["codes"].add(code)
            seen["n"] += 1

    one()
    assert seen["n"] >= INPUTS
    # the generator reached deep into the command path, not only the CBOR decoder
    deep = {"malformed", "bad_signature", "stale", "replayed", "bad_args", "unknown_command", "ok"}
    assert deep <= seen["codes"], deep - seen["codes"]
    # and the unit still obeys a genuine command (a re-signed damaged body may have carried
    # a far-future counter: the hub's next counter must be above it, as always)
    control.armed["unit"] = True
    topic = f"{BASE}/cmd/disarm"
    ctr = max(next(counter), link.outbox.get("cmd_ctr") + 1)
    reply = proc.handle(topic, signer.sign(topic, "after-fuzz", {}, ctr=ctr))
    assert reply["ok"] and control.armed["unit"] is False
