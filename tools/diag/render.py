"""Readable output of `vigil-diag`: aligned tables and a progress line on stderr."""

from __future__ import annotations

import datetime as dt
from typing import Any, TextIO


class Progress:
    """'[3/7] storage' lines and a byte counter for long transfers, on stderr."""

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self.stream, self.enabled = stream, enabled
        self._last_pct = -1
        self._open = False

    def step(self, i: int, of: int, what: str) -> None:
        if not self.enabled or what == "done":
            return
        self._end_line()
        self.stream.write(f"[{i + 1}/{of}] {what}...\n")
        self.stream.flush()

    def bytes(self, got: int, total: int) -> None:
        if not self.enabled or total < 16384:
            return
        pct = int(100 * got / total)
        if pct != self._last_pct:
            self._last_pct = pct
            self.stream.write(f"\rreceiving {got // 1024}/{total // 1024} KiB ({pct} %)")
            self.stream.flush()
            self._open = True

    def _end_line(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False

    def done(self) -> None:
        if self.enabled:
            self._end_line()


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _kv(pairs: list[tuple[str, Any]]) -> str:
    w = max(len(k) for k, _ in pairs)
    return "".join(f"{k.ljust(w)}  {v}\n" for k, v in pairs)


def human(cmd: str, r: dict[str, Any]) -> str:
    fn = globals().get(f"_{cmd}")
    if fn is None or not _KNOWN_SHAPE.get(cmd, lambda _r: True)(r):
        return generic(r)
    return fn(r)


# what each renderer needs; other shapes (an older unit, the link's own diagnostics) print as key: value
_KNOWN_SHAPE = {
    "status": lambda r: "unit" in r and "frames" in r,
    "selftest": lambda r: isinstance(r.get("checks"), list),
    "bench": lambda r: "detect_ms" in r,
    "test_output": lambda r: "ok" in r,
    "zones": lambda r: "zones" in r,
}


def generic(r: dict[str, Any], indent: int = 0) -> str:
    """Nested key: value lines, for results without a dedicated table."""
    if not r:
        return "ok\n"
    w = max(len(str(k)) for k in r)
    out = ""
    for k, v in r.items():
        if isinstance(v, dict) and v:
            out += f"{' ' * indent}{k}:\n" + generic(v, indent + 2)
        else:
            out += f"{' ' * indent}{str(k).ljust(w)}  {v}\n"
    return out


def _status(r: dict[str, Any]) -> str:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in (r.get("stage_ms") or {}).items()) or "-"
    age = r.get("last_frame_age_s")
    link = r.get("link") or {}
    pairs = [
        (
            "unit",
            f"{r.get('site')}/{r.get('unit')}  (vigil {r.get('version')}, board {r.get('board')})",
        ),
        ("running", "yes" if r.get("live") else "NO: the unit's service is not running"),
        ("uptime", f"{r.get('uptime_s', 0):.0f} s"),
        (
            "frames",
            f"{r.get('frames')} at {r.get('fps')} fps (last {'-' if age is None else f'{age:.1f} s ago'})",
        ),
        ("stage ms", stages),
        ("people now", r.get("people")),
        ("events", f"{r.get('events')} {r.get('events_by_type') or ''}"),
        ("model", f"{r.get('model')}{' (Edge TPU)' if r.get('edgetpu_configured') else ''}"),
    ]
    if link:
        state = {True: "connected", False: "DISCONNECTED", None: "unknown"}[link.get("connected")]
        pairs.append(("link", f"{link.get('url')} {state}"))
    out = _kv(pairs)
    det = r.get("deterrents")
    if det:
        out += f"\ndeterrents: muted {det.get('muted')}, quiet hours {det.get('quiet_hours')}\n"
        out += _outputs(det)
    return out


def _selftest(r: dict[str, Any]) -> str:
    rows = [["PASS" if c["ok"] else "FAIL", c["name"], c["detail"]] for c in r["checks"]]
    out = table(rows, ["result", "check", "detail"])
    hints = [(c["name"], c["hint"]) for c in r["checks"] if not c["ok"] and c.get("hint")]
    if hints:
        out += "\nto fix:\n" + "".join(f"  {n}: {h}\n" for n, h in hints)
    failed = sum(not c["ok"] for c in r["checks"])
    out += f"\n{len(r['checks']) - failed} passed, {failed} failed\n"
    return out


def _bench(r: dict[str, Any]) -> str:
    d, i = r["detect_ms"], r["inference_ms"]
    return _kv(
        [
            (
                "model",
                f"{r['model']} on {r['backend']}, image {r['image'][0]}x{r['image'][1]}, {r['runs']} runs",
            ),
            (
                "detect ms",
                f"mean {d['mean']}  p50 {d['p50']}  p95 {d['p95']}  ({r['detect_fps']} fps)",
            ),
            ("inference ms", f"mean {i['mean']}  p50 {i['p50']}"),
            ("loop", f"{r['loop'].get('fps')} fps; stages {r['loop'].get('stage_ms')}"),
        ]
    )


def _snapshot(r: dict[str, Any]) -> str:
    return (
        f"wrote {r['file']} ({r.get('png_bytes', 0) // 1024} KiB, {r['size'][0]}x{r['size'][1]}): frame {r['frame']}, "
        f"{r['zones']} zone(s), {r['lines']} line(s), {r['tracks']} track(s), {r['detections']} detection(s); "
        f"people masked by {r['anonymised_by']}\n"
    )


def _logs(r: dict[str, Any]) -> str:
    lines = []
    for row in r.get("lines", []):
        t = row.get("time")
        ts = (
            dt.datetime.fromtimestamp(t).strftime("%H:%M:%S") if isinstance(t, (int, float)) else ""
        )
        lines.append(
            f"{ts} {row.get('level', ''):7} {row.get('logger', '')}: {row.get('message', '')}".strip()
        )
    return (
        ("\n".join(lines) + "\n")
        if lines
        else f"(no log lines from the {r.get('source', 'unit')})\n"
    )


def _zones(r: dict[str, Any]) -> str:
    rows = [
        [z["name"], z["purpose"], "yes" if z["armed"] else "no", z["points"], z["people"]]
        for z in r["zones"]
    ]
    out = (
        table(rows, ["zone", "purpose", "armed", "points", "people"])
        if rows
        else "no zones configured\n"
    )
    if r.get("lines"):
        out += "\n" + table([[ln["name"], ln["purpose"]] for ln in r["lines"]], ["line", "purpose"])
    return out


def _outputs(r: dict[str, Any]) -> str:
    outs = r.get("outputs") or {}
    if not outs:
        return "no deterrent outputs configured\n"
    rows = [
        [
            n,
            o.get("kind"),
            o.get("pin"),
            {True: "ON", False: "off", None: "?"}[o.get("on")],
            o.get("error") or "",
        ]
        for n, o in outs.items()
    ]
    return table(rows, ["output", "kind", "pin", "state", "problem"])


def _test_output(r: dict[str, Any]) -> str:
    return f"{'PASS' if r.get('ok') else 'FAIL'}: {r.get('detail')}\n" + (
        f"  hint: {r['hint']}\n" if r.get("hint") else ""
    )


def _mute(r: dict[str, Any]) -> str:
    return "muted\n" if r.get("muted") else "unmuted\n"
