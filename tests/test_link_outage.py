"""Done-when checks of the hub link on a real Mosquitto: a 30 s broker outage in the middle
of an event stream, and a unit process killed with SIGKILL mid-stream, lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from firmware.events.records import Severity
from firmware.link.outbox import Outbox
from tests.support.broker import MOSQUITTO, MosquittoBroker
from tests.test_link import make_event, make_link
from tools.hub.client import HubClient

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")

OUTAGE_S = float(os.environ.get("VIGIL_TEST_OUTAGE_S", "30"))
REPO = Path(__file__).resolve().parents[1]


def _hub(url: str) -> HubClient:
    # A persistent session, as a production hub keeps: the broker queues QoS 1 events for
    # the hub while it is reconnecting.
    return HubClient(url, site="s1", client_id="hub-test", persistent=True).connect()


def _check_stream(hub: HubClient, expected: int) -> list[dict]:
    events = hub.events("u1")  # de-duplicated by msg_id
    keys = [(e["session"], e["seq"]) for e in events]
    assert len(events) == expected, f"{len(events)} of {expected} events arrived"
    assert keys == sorted(keys), "events out of order"
    assert len(set(keys)) == len(keys), "the same event arrived under two msg_ids"
    return events


def test_broker_down_30s_mid_stream_loses_nothing(tmp_path):
    broker = MosquittoBroker(persistence=True, extra_conf="max_queued_messages 100000")
    broker.start()
    hub = _hub(broker.url)
    link = make_link(broker.url, tmp_path, reconnect_max_s=2.0, keepalive_s=5)
    link.start()
    produced = []
    stop = threading.Event()

    def stream() -> None:  # a replayed clip emitting ~20 events/s, alerts among them
        i = 0
        while not stop.is_set():
            sev = Severity.ALERT if i % 10 == 0 else Severity.NOTICE
            link.publish_event(make_event(i, sev))
            produced.append(i)
            i += 1
            time.sleep(0.05)

    t = threading.Thread(target=stream)
    try:
        t.start()
        hub.wait_for(lambda _r: len(hub.events("u1")) >= 20)
        broker.stop()
        time.sleep(OUTAGE_S)
        during = len(produced)
        assert link.outbox.depth() > 0.5 * OUTAGE_S * 20 * 0.5  # queued on disk meanwhile
        broker.start()
        hub.wait_for(lambda _r: link.connected, timeout=15)
        time.sleep(1.0)  # live events after the backlog
        stop.set()
        t.join()
        assert len(produced) > during
        hub.wait_for(lambda _r: len(hub.events("u1")) >= len(produced), timeout=30)
        events = _check_stream(hub, len(produced))
        assert [e["frame"] for e in events] == produced
        states = hub.statuses("u1")
        first_offline = states.index("offline")
        assert "online" in states[:first_offline] and "online" in states[first_offline:]
        # birth was re-published before the unit said online again
        kinds = [r.kind for r in hub.received if r.kind in ("birth", "status")]
        after = kinds[kinds.index("status", kinds.index("birth")) + 1 :]
        assert after[after.index("birth") :][:2] == ["birth", "status"]
        assert not [r for r in hub.received if r.problems]
    finally:
        stop.set()
        t.join()
        link.stop()
        hub.close()
        broker.__exit__()


UNIT_PROCESS = """
import sys, time
from pathlib import Path
from firmware.link import Link
from firmware.link.config import LinkConfig
from tests.test_link import BIRTH, make_event

url, data_dir, first, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
link = Link(LinkConfig(mqtt=url, reconnect_min_s=0.2, keepalive_s=5), site="s1", unit="u1",
            data_dir=data_dir, birth=BIRTH)
link.start()
for i in range(first, first + count):
    link.publish_event(make_event(i))
    print(i, flush=True)  # produced: publish_event returned
    time.sleep(0.002)
print("done", flush=True)
while True:
    if link.outbox.depth() == 0:
        break
    time.sleep(0.05)
link.stop()
"""


def _unit(url: str, data_dir: Path, first: int, count: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", UNIT_PROCESS, url, str(data_dir), str(first), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def test_sigkill_mid_stream_then_restart_loses_nothing(tmp_path):
    """Killed while events flow and while a backlog waits for a broker that is away."""
    broker = MosquittoBroker(persistence=True)
    broker.start()
    hub = _hub(broker.url)
    try:
        proc = _unit(broker.url, tmp_path, 0, 100_000)
        produced = []
        for line in proc.stdout:
            produced.append(int(line))
            if len(produced) == 300:
                broker.stop()  # from here on events pile up in the outbox
            if len(produced) == 500:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(10)
        produced += [int(x) for x in proc.stdout.read().split() if x.isdigit()]
        first_run = len(produced)
        left = Outbox(tmp_path / "link-outbox.sqlite")
        # the backlog survived the SIGKILL on disk (~200 events; a few may have been
        # acknowledged while the broker was shutting down)
        assert left.depth() >= 100
        left.close()

        broker.start()
        proc = _unit(broker.url, tmp_path, 100_000, 50)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        produced += [int(x) for x in out.split() if x.isdigit()]
        hub.wait_for(lambda _r: len(hub.events("u1")) >= len(produced), timeout=20)
        events = hub.events("u1")
        frames = [e["frame"] for e in events]
        assert sorted(frames) == produced, "events lost (or invented) across the SIGKILL"
        assert len(set(frames)) == len(frames)
        assert frames[:first_run] == produced[:first_run]  # the backlog first, in order
        assert len({e["session"] for e in events}) == 2
        assert "offline" in hub.statuses("u1")  # the Will of the killed unit
    finally:
        hub.close()
        broker.__exit__()
