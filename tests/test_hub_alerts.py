"""Alerts from a unit's records (in-process ingest on a real SQLite file): one per situation,
opened at the configured severity, with earlier records and deterrents kept."""

from __future__ import annotations

import os
import time

import cbor2
import pytest

from tools.hub.serve import alerts
from tools.hub.serve.alerts import AlertStage
from tools.hub.serve.db import HubDB
from tools.hub.serve.ingest import Ingest, Message, Store

pytest.importorskip("pycddl")


def record(seq, event_id, phase, severity, type_="loitering", explain=None):
    return cbor2.dumps(
        dict(
            v=1,
            msg_id=os.urandom(16).hex(),
            session=1,
            seq=seq,
            site="s",
            unit="u",
            event_id=event_id,
            type=type_,
            rule="loitering",
            phase=phase,
            severity=severity,
            severity_name=alerts.SEVERITIES[severity],
            start_time=1.0,
            start_frame=1,
            time=1.0 + seq,
            frame=seq,
            end_time=None,
            end_frame=None,
            zone="display",
            track_ids=[4],
            explain=explain or {"dwell_s": 5.0 * (1 + severity), "threshold_s": 5.0},
            incident_id=None,
        )  # fmt: skip
    )


def run(tmp_path, payloads, min_severity=2):
    from tools.hub.contract import Validator

    db = HubDB(tmp_path / "hub.sqlite")
    ing = Ingest(db, [Store(), AlertStage(min_severity)], validator=Validator())
    for p in payloads:  # one batch each, as they arrive live
        ing.process([Message("vigil/s/u/events", "s", "u", "events", p, time.time())])
    return db


def test_a_situation_that_becomes_serious_opens_one_alert_with_its_past(tmp_path):
    deter = {"action": "on", "reason": "rule", "output": "light", "trigger_event": "A"}
    db = run(tmp_path, [
        record(0, "A", "start", 1),  # notice: below the default warn
        record(1, "D1", "instant", 1, "deterrent", deter),
        record(2, "B", "start", 1),  # another situation that stays a notice
        record(3, "A", "update", 2),  # warn: opens the alert
        record(4, "A", "end", 2),
        record(5, "B", "end", 1),
    ])  # fmt: skip
    got = alerts.query(db.read())
    assert len(got) == 1
    a = got[0]
    assert (a["event_id"], a["severity"], a["state"], a["zone"]) == ("A", "warn", "open", "display")
    assert [h["action"] for h in a["history"]] == ["start", "deterrent", "opened", "end"]
    assert a["ended_at"] is not None
    assert [(d["action"], d["output"]) for d in a["deterrents"]] == [("on", "light")]
    assert a["explain_text"] == "loitering in zone display: dwell 15 s, threshold 5 s"


def test_min_severity_and_the_workflow_rules(tmp_path):
    db = run(tmp_path, [record(0, "A", "start", 1), record(1, "B", "instant", 3)], min_severity=1)
    ids = {a["event_id"]: a["id"] for a in alerts.query(db.read())}
    assert set(ids) == {"A", "B"}
    with db.write() as con:
        alerts.change(con, ids["A"], "resolve", "anna", "seen on camera", "false_alarm")
    with pytest.raises(alerts.WorkflowError, match="already resolved"), db.write() as con:
        alerts.change(con, ids["A"], "ack", "gus")
    with pytest.raises(alerts.WorkflowError, match="outcome"), db.write() as con:
        alerts.change(con, ids["B"], "resolve", "anna", "", "shrug")
    with pytest.raises(alerts.NotFound), db.write() as con:
        alerts.change(con, 999, "ack", "gus")
    assert [a["event_id"] for a in alerts.query(db.read(), state="active")] == ["B"]
    assert [a["event_id"] for a in alerts.query(db.read(), outcome="false_alarm")] == ["A"]


def test_footfall_per_zone_and_hour(tmp_path):
    from tools.hub.serve.views import footfall

    def summary(seq, visits, dwell, people, crossings):
        ex = {"period_s": 60.0, "lines": {"door": {"in": crossings, "out": 1}},
              "zones": {"display": {"visits_ended": visits, "mean_dwell_s": dwell,
                                    "mean_people": 0.5, "max_people": people}}}  # fmt: skip
        return record(seq, f"F{seq}", "instant", 0, "footfall", ex)

    db = run(tmp_path, [summary(0, 2, 10.0, 1, 3), summary(1, 6, 30.0, 4, 2)])
    got = footfall(db.read())
    (z,) = got["zones"]
    assert (z["zone"], z["visits"], z["max_people"]) == ("display", 8, 4)
    assert z["mean_dwell_s"] == pytest.approx((2 * 10 + 6 * 30) / 8)  # visit-weighted
    assert [(x["line"], x["in"], x["out"]) for x in got["lines"]] == [("door", 5, 2)]
    assert z["hour"] % 3600 == 0 and alerts.query(db.read()) == []  # info: no alert
