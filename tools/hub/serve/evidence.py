"""Evidence packs: one case as a signed zip a loss-prevention team can hand to the police.

``manifest.json`` holds every event of the case, the units' births (firmware, model and
config hashes), the store inputs, the response log and the clip references (sha256), plus
the sha256 of every other file; ``manifest.sig`` is the hub's Ed25519 signature over the
manifest's bytes; ``report.html`` is the human-readable timeline. Verification checks the
signature and every hash, and names the file that was altered.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import sqlite3
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tools.hub.serve.cases import STORE_TYPES, case_items, summary
from tools.hub.serve.db import loads

PACK_FORMAT = "vigil-case-pack/1"
MEMBERS = ("manifest.json", "manifest.sig", "report.html")


class PackError(ValueError):
    """A pack that does not verify; the message names the file and what is wrong."""


def manifest(con: sqlite3.Connection, case_id: int) -> dict[str, Any]:
    case = summary(con, case_id)
    items = case_items(con, case_id)
    births = {}
    for unit in case["units"]:
        r = con.execute(
            "SELECT birth FROM units WHERE site=? AND unit=?", (case["site"], unit)
        ).fetchone()
        b = loads(r["birth"]) if r and r["birth"] else None
        births[unit] = (
            None
            if b is None
            else {k: b.get(k) for k in ("firmware", "models", "config_hash", "session", "time")}
        )
    alert_ids = [a["id"] for a in case["alerts"]]
    response = []
    if alert_ids:
        marks = ",".join("?" * len(alert_ids))
        rows = con.execute(
            f"SELECT alert_id, at, user, action, state, note, outcome FROM alert_history "
            f"WHERE alert_id IN ({marks}) AND user IS NOT NULL ORDER BY at, id",
            alert_ids,
        ).fetchall()
        response = [dict(r) for r in rows]
    return {
        "format": PACK_FORMAT,
        "case": case,
        "events": [i for i in items if i["event"]["type"] not in STORE_TYPES],
        "store_inputs": [i for i in items if i["event"]["type"] in STORE_TYPES],
        "units": births,
        "response": response,
        "clips": case["clips"],
    }


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def report_html(m: dict[str, Any]) -> str:
    """A printable page: the case, its timeline (what fired and why), who responded."""
    from tools.hub.serve.alerts import explain_text

    e = html.escape
    c = m["case"]
    rows = []
    for item in [*m["events"], *m["store_inputs"]]:
        ev = item["event"]
        rows.append(
            (
                item["received_at"],
                f"<tr><td>{e(_when(item['received_at']))}</td><td>{e(item['unit'])}</td>"
                f"<td>{e(ev.get('zone') or '')}</td><td>{e(ev['type'])} ({e(ev['phase'])})</td>"
                f"<td>{e(explain_text(ev['type'], ev.get('zone'), ev.get('explain')))}</td></tr>",
            )
        )
    rows.sort(key=lambda r: r[0])
    resp = "".join(
        f"<tr><td>{e(_when(r['at']))}</td><td>{e(r['user'])}</td><td>{e(r['action'])}</td>"
        f"<td>{e(r['outcome'] or '')}</td><td>{e(r['note'] or '')}</td></tr>"
        for r in m["response"]
    )
    clips = "".join(
        f"<tr><td>{e(cl['unit'])}</td><td>{e(cl['incident_id'])}</td><td><code>{e(cl['sha256'] or 'not yet announced')}</code></td></tr>"
        for cl in m["clips"]
    )
    units = "".join(
        f"<tr><td>{e(u)}</td><td>{e(str((b or {}).get('firmware')))}</td><td><code>{e(str((b or {}).get('config_hash')))}</code></td></tr>"
        for u, b in m["units"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Case {c["id"]}: {e(c["title"] or "")}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%;margin-bottom:1.5em}}
td,th{{border:1px solid #999;padding:.3em;text-align:left;vertical-align:top}}</style></head><body>
<h1>Case {c["id"]}: {e(c["title"] or "")}</h1>
<p>Site {e(c["site"])}; {e(c["state"])}; opened {e(_when(c["opened_at"]))}; closed {e(_when(c["closed_at"])) or "-"};
zones {e(", ".join(c["zones"]))}; units {e(", ".join(c["units"]))}.</p>
<h2>Timeline</h2><table><tr><th>received</th><th>unit</th><th>zone</th><th>what</th><th>why</th></tr>{"".join(r for _, r in rows)}</table>
<h2>Response</h2><table><tr><th>when</th><th>who</th><th>action</th><th>outcome</th><th>note</th></tr>{resp}</table>
<h2>Evidence clips (encrypted on the units)</h2><table><tr><th>unit</th><th>incident</th><th>sha256</th></tr>{clips}</table>
<h2>Units</h2><table><tr><th>unit</th><th>firmware</th><th>config sha256</th></tr>{units}</table>
<p>The manifest.json in this pack is signed with the hub's Ed25519 key (manifest.sig); check it
with <code>vigil-hub case verify PACK.zip --pub HUB_PUBLIC.pem</code>.</p></body></html>
"""


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: cannot read the hub's private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def export(con: sqlite3.Connection, case_id: int, key_path: Path, out: Path) -> dict[str, Any]:
    """Write the pack to a temporary name, then rename: a failed export leaves nothing."""
    key = _load_private(key_path)
    m = manifest(con, case_id)
    report = report_html(m).encode()
    m["files"] = {"report.html": hashlib.sha256(report).hexdigest()}
    body = json.dumps(m, indent=1, sort_keys=True, default=str).encode()
    pack = canonical_zip(
        {
            "manifest.json": body,
            "manifest.sig": (key.sign(body).hex() + "\n").encode(),
            "report.html": report,
        }
    )
    tmp = out.with_name(out.name + ".partial")
    try:
        tmp.write_bytes(pack)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return m


def canonical_zip(members: dict[str, bytes]) -> bytes:
    """The one byte layout of a pack (fixed order, times and attributes, stored): verification
    rebuilds it, so a byte changed in the zip's own headers is found too."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in MEMBERS:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            z.writestr(info, members[name])
    return buf.getvalue()


def verify(pack: Path, pub_path: Path) -> dict[str, Any]:
    """The manifest of a pack whose signature and hashes hold; else PackError naming the file."""
    try:
        pub = serialization.load_pem_public_key(pub_path.read_bytes())
    except (OSError, ValueError) as e:
        raise ValueError(f"{pub_path}: cannot read the hub's public key ({e})") from None
    if not isinstance(pub, Ed25519PublicKey):
        raise ValueError(f"{pub_path}: not an Ed25519 public key")
    try:
        raw = pack.read_bytes()
        z = zipfile.ZipFile(io.BytesIO(raw))
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError) as e:
        raise PackError(
            f"{pack}: not a readable zip ({e}): the pack was altered or cut short"
        ) from None
    with z:
        names = z.namelist()
        extra = sorted(set(names) - set(MEMBERS))
        if extra:
            raise PackError(f"{pack}: unexpected file(s) {', '.join(extra)} (added to the pack)")
        data: dict[str, bytes] = {}
        for name in MEMBERS:
            if name not in names:
                raise PackError(f"{pack}: {name} is missing")
            try:
                data[name] = z.read(name)
            except Exception as e:  # noqa: BLE001 - any damage to a member is that member's
                raise PackError(f"{pack}: {name} is damaged ({e})") from None
            info = z.getinfo(name)
            if info.compress_type != zipfile.ZIP_STORED:
                raise PackError(f"{pack}: {name} was re-packed (compression changed)")
    try:
        sig = bytes.fromhex(data["manifest.sig"].decode("ascii").strip())
        pub.verify(sig, data["manifest.json"])
    except (ValueError, UnicodeDecodeError):
        raise PackError(f"{pack}: manifest.sig is altered (not a signature)") from None
    except InvalidSignature:
        raise PackError(
            f"{pack}: manifest.json or manifest.sig altered: the signature does not match (or another hub's key)"
        ) from None
    m = json.loads(data["manifest.json"])
    for name, want in (m.get("files") or {}).items():
        got = hashlib.sha256(data.get(name, b"")).hexdigest()
        if got != want:
            raise PackError(f"{pack}: {name} altered (sha256 {got}, manifest says {want})")
    if set(m.get("files") or {}) != {"report.html"}:
        raise PackError(f"{pack}: manifest.json does not list report.html's hash")
    expected = canonical_zip(data)
    if raw != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(raw, expected, strict=False)) if a != b),
            min(len(raw), len(expected)),
        )
        raise PackError(
            f"{pack}: the zip's headers around byte {at} ({_region(expected, at)}) were altered"
        )
    return m


def _region(pack: bytes, offset: int) -> str:
    """Which part of a canonical pack a byte offset falls in."""
    with zipfile.ZipFile(io.BytesIO(pack)) as z:
        infos = sorted(z.infolist(), key=lambda i: i.header_offset)
        for info, nxt in zip(infos, [*infos[1:], None], strict=True):
            end = nxt.header_offset if nxt is not None else z.start_dir
            if info.header_offset <= offset < end:
                return f"the entry of {info.filename}"
    return "the zip directory"
