"""A flood of unsigned commands on a real Mosquitto (issue 17): the signed command behind it
is answered within a second, and the flood's echo (replies, log lines, paho's queue) is
bounded. The full-size flood (10,000/s for 20 s) is tools/bench/command_flood.py."""

from __future__ import annotations

from tools.bench.command_flood import run

RATE, SECONDS = 2000.0, 3.0


def test_unsigned_flood_never_delays_a_signed_command(broker, tmp_path):
    r = run(broker.url, tmp_path, RATE, SECONDS)
    assert r["flood_sent"] >= 0.9 * RATE * SECONDS
    # every flood message was refused and counted (metrics), none reached the queue
    assert r["commands"]["unsigned"] == r["flood_sent"]
    assert r["command_queue_max"] <= 16
    # the signed commands sent every half second through the flood were each answered fast
    assert r["signed_answered"] == r["signed_sent"] >= 6 and r["commands"]["ok"] == r["signed_sent"]
    assert r["latency_max_s"] < 1.0, r
    assert r["events_received"] == r["events_sent"] and r["event_delay_max_s"] < 1.0, r
    # the flood's echo is bounded: a few refusal replies and log lines, not one per message
    assert r["refusal_replies"] <= 5 * (SECONDS + 3) + 5, r
    assert r["log_lines"] <= 10, r
    assert r["paho_out_queue_max"] <= 50, r
