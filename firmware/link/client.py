"""The hub link: events through an on-disk outbox to MQTT, status/birth/Will, metrics, commands.

One thread owns the connection: it connects (with backoff, never raising to the caller),
publishes birth then status, drains the outbox in order with a bounded window of QoS 1
publishes, and deletes an event only on its PUBACK. Each connection uses a fresh paho client,
so nothing is resent behind the outbox's back; after a reconnect the backlog is resent from
its oldest event (the hub drops duplicates by ``msg_id``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import socket
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import cbor2
import paho.mqtt.client as mqtt

from firmware.config.base import resolve_path
from firmware.events.bus import Stamper
from firmware.events.records import Event
from firmware.link import messages
from firmware.link.commands import CommandProcessor
from firmware.link.config import LinkConfig, parse_url
from firmware.link.control import UnitControl
from firmware.link.outbox import Outbox, storage_problem

log = logging.getLogger("vigil.link")

CONNECT_TIMEOUT_S = 10.0
FLUSH_TIMEOUT_S = 3.0


class _Connection:
    """State of one MQTT connection; callbacks of a dead client only touch their own object."""

    def __init__(self, client: mqtt.Client):
        self.client = client
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.refused: str | None = None
        self.acked: list[int] = []  # mids; list.append is atomic, no lock shared with paho
        self.inflight: dict[int, int] = {}  # mid -> outbox rowid
        self.last_sent = 0  # highest outbox rowid published on this connection


class Link:
    """The unit's MQTT link to the hub (see docs/mqtt.md for the contract)."""

    def __init__(
        self,
        cfg: LinkConfig,
        *,
        site: str,
        unit: str,
        data_dir: Path,
        birth: dict[str, Any],
        control: UnitControl | None = None,
        url_override: str | None = None,
        config_dir: Path | None = None,
    ):
        self.cfg = cfg
        self.site, self.unit = site, unit
        self.topics = messages.Topics(cfg.topic_prefix, site, unit)
        self.url = url_override or cfg.mqtt
        self._config_dir = Path(config_dir) if config_dir else Path.cwd()
        if self.url:
            self.tls, self.host, self.port = parse_url(self.url)
        self.data_dir = Path(data_dir)
        self.outbox = Outbox(
            self.data_dir / "link-outbox.sqlite",
            cfg.outbox_max_events,
            cfg.outbox_sync,
            cfg.outbox_sync_interval_s,
        )
        self.session = self.outbox.next_session()
        self.stamper = Stamper(unit, site, self.session)  # for events not from the unit's bus
        self._birth = dict(birth)
        self.control = control
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._clean_stop = True
        self._thread: threading.Thread | None = None
        self._conn: _Connection | None = None
        self._alert: list[str] = []  # reasons from the unit (set_alert)
        self._outbox_full = False  # the link's own reasons: events were dropped...
        self._outbox_failed = False  # ... or could not be stored
        self._write_problem = "storage_failed"  # disk_full when that was why
        self._status_dirty = False
        self._birth_dirty = False
        self._loop_metrics: dict[str, Any] = {}
        self.counters: dict[str, int] = {
            "published": 0,
            "connects": 0,
            "connect_failures": 0,
            "outbox_write_failed": 0,
        }
        self.state = "stopped"
        self._commands = None
        if control is not None:
            self.attach_control(control)
        self._cmd_queue: queue.Queue = queue.Queue(maxsize=cfg.command_queue)
        self._cmd_thread: threading.Thread | None = None

    def attach_control(self, control: UnitControl) -> None:
        """Take hub commands for ``control`` (before ``start``; the unit builds its control
        after the link, whose session numbers the unit's events)."""
        self.control = control
        self._commands = CommandProcessor(self, control)

    # -- the frame loop's side ----------------------------------------------------------------

    def start(self) -> None:
        """Start the link thread; returns at once, whether or not the broker is reachable."""
        if not self.url:
            log.info("link: no broker configured ([link] mqtt empty); events are not sent")
            return
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="vigil-link", daemon=True)
        self._thread.start()
        if self._commands is not None:
            self._cmd_thread = threading.Thread(
                target=self._command_worker, name="vigil-link-cmd", daemon=True
            )
            self._cmd_thread.start()

    def publish_event(self, event: Event) -> None:
        """Store the event in the outbox; the link sends it. Events from the unit's bus come
        stamped; others (tools, tests) are stamped here, once, the same way."""
        self.stamper.stamp(event)
        msg = event.to_dict()
        try:
            dropped = self.outbox.put(msg["msg_id"], int(event.severity), cbor2.dumps(msg))
        except sqlite3.Error as e:  # disk full or broken: the frame loop must go on
            self.counters["outbox_write_failed"] += 1
            if not self._outbox_failed:
                self._write_problem = storage_problem(self.outbox.path)
                log.error("link: cannot store events in the outbox (%s); they are lost", e)
                self._outbox_failed = True
                self._status_dirty = True
                self._wake.set()
            return
        if self._outbox_failed:
            self._outbox_failed = False
            self._status_dirty = True
        if dropped and not self._outbox_full:
            log.warning(
                "link: outbox full (%d events), dropping the oldest low-severity events",
                self.outbox.max_events,
            )
            self._outbox_full = True
            self._status_dirty = True
        self._wake.set()

    def publish_tracks(self, payload: bytes) -> bool:
        """A frame's tracks (firmware/link/tracks.py) on ``<base>/tracks``, QoS 0, not
        retained; dropped while offline (the next frame supersedes it)."""
        conn = self._conn
        if conn is None or not conn.connected.is_set() or conn.lost.is_set():
            return False
        return conn.client.publish(f"{self.topics.base}/tracks", payload, qos=0).rc == 0

    def publish_metrics(self, loop_metrics: dict[str, Any]) -> None:
        """Latest frame-loop figures (fps, stage_ms, dropped_frames...); sent every
        ``metrics_interval_s`` with the link's own (outbox depth, drops, CPU temperature, storage)."""
        self._loop_metrics = dict(loop_metrics)

    def set_alert(self, reasons: list[str]) -> None:
        """Status becomes ``alert`` with these reason codes (retained) until clear_alert()."""
        reasons = sorted({str(r) for r in reasons})
        if reasons != self._alert:
            self._alert = reasons
            self._status_dirty = True
            self._wake.set()

    def clear_alert(self) -> None:
        self.set_alert([])

    def update_birth(self, **fields: Any) -> None:
        """Change birth fields (for example config_hash after a config change) and re-publish."""
        self._birth.update(fields)
        self._birth_dirty = True
        self._wake.set()

    def stop(self, clean: bool = True) -> None:
        """Stop the link. clean: publish status ``stopped``, flush the outbox for a few
        seconds, disconnect. Not clean: drop the connection so the broker sends the Will."""
        self._clean_stop = clean
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(FLUSH_TIMEOUT_S + CONNECT_TIMEOUT_S)
            self._thread = None
        if self._cmd_thread is not None:
            with contextlib.suppress(queue.Full):
                self._cmd_queue.put(None, timeout=5)  # behind at most command_queue commands
            self._cmd_thread.join(5)
            self._cmd_thread = None
        self.state = "stopped"
        self.outbox.close()

    @property
    def connected(self) -> bool:
        c = self._conn
        return c is not None and c.connected.is_set() and not c.lost.is_set()

    # -- connection -------------------------------------------------------------------------

    def resolve(self, p: str) -> str:
        """A path from [link] (TLS material, the hub key), relative to the config's folder."""
        return str(resolve_path(p, self._config_dir))

    def _new_client(self) -> _Connection:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id or f"vigil-{self.site}-{self.unit}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        conn = _Connection(client)
        client.user_data_set(conn)
        client.max_inflight_messages_set(self.cfg.max_inflight + 20)
        client.will_set(
            self.topics.status, messages.status("offline", self.session), qos=1, retain=True
        )
        if self.tls:
            c = self.cfg
            client.tls_set(
                ca_certs=self.resolve(c.tls_ca) if c.tls_ca else None,
                certfile=self.resolve(c.tls_cert) if c.tls_cert else None,
                keyfile=self.resolve(c.tls_key) if c.tls_key else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return conn

    def _on_connect(self, client, conn: _Connection, flags, reason, properties) -> None:
        if reason.is_failure:
            conn.refused = str(reason)
            conn.lost.set()
        else:
            conn.connected.set()
        self._wake.set()

    def _on_disconnect(self, client, conn: _Connection, flags, reason, properties) -> None:
        conn.lost.set()
        self._wake.set()

    def _on_publish(self, client, conn: _Connection, mid, reason, properties) -> None:
        conn.acked.append(mid)
        self._wake.set()

    def _on_message(self, client, conn: _Connection, msg: mqtt.MQTTMessage) -> None:
        if self._commands is None:
            return
        pending = self._commands.screen(msg.topic, bytes(msg.payload))
        if isinstance(pending, dict):  # refused by the cheap checks (counted, maybe answered)
            return
        try:
            self._cmd_queue.put_nowait(pending)
        except queue.Full:
            self._commands.busy(pending)

    def _run(self) -> None:
        backoff = self.cfg.reconnect_min_s
        outage_logged = False
        while not self._stopping.is_set():
            conn = None
            try:
                conn = self._new_client()
                conn.client.connect(self.host, self.port, self.cfg.keepalive_s)
            except (OSError, ssl.SSLError, ValueError) as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                conn.client.loop_start()
                self._conn = conn
                try:
                    problem = self._session(conn)
                except Exception as e:  # never let the link thread die (disk errors...)
                    log.exception("link: unexpected error, reconnecting")
                    problem = f"{type(e).__name__}: {e}"
                    with contextlib.suppress(Exception):
                        self._drop(conn, abrupt=True)
                if problem is None:  # a clean stop
                    return
            if conn is not None and conn.connected.is_set():
                backoff = self.cfg.reconnect_min_s
                outage_logged = True
                log.warning(
                    "link: lost the MQTT broker %s (%s); events are kept in the outbox, reconnecting",
                    self.url,
                    problem,
                )
            elif not outage_logged:
                outage_logged = True
                log.warning(
                    "link: MQTT broker %s unreachable (%s); %d event(s) kept in the outbox, "
                    "retrying every <= %.0f s",
                    self.url,
                    problem,
                    self.outbox.depth(),
                    self.cfg.reconnect_max_s,
                )
            else:
                log.debug("link: still no broker (%s)", problem)
            self.counters["connect_failures"] += 1
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.cfg.reconnect_max_s)

    def _session(self, conn: _Connection) -> str | None:
        """Serve one connection; returns why it ended, or None after a clean stop."""
        client = conn.client
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not conn.connected.is_set() and not conn.lost.is_set():
            if self._stopping.is_set() or time.monotonic() > deadline:
                self._drop(conn)
                return "no CONNACK" if not self._stopping.is_set() else None
            self._wake.wait(0.1)
            self._wake.clear()
        if conn.lost.is_set():
            self._drop(conn)
            return f"broker refused the connection: {conn.refused or 'connection lost'}"
        if self._commands is not None:
            client.subscribe([(self.topics.cmd_filter, 1), (self.topics.config_set, 1)])
        self._publish_birth(client)
        self.counters["connects"] += 1
        self.state = "online"
        log.info(
            "link: connected to %s as %s (session %d, %d event(s) queued)",
            self.url,
            self.topics.base,
            self.session,
            self.outbox.depth(),
        )
        next_metrics = time.monotonic() + self.cfg.metrics_interval_s
        flush_deadline = None
        while True:
            self._wake.clear()
            self._take_acks(conn)
            if conn.lost.is_set():
                self._drop(conn)
                return "connection lost"
            if self._stopping.is_set():
                if not self._clean_stop:
                    self._drop(conn, abrupt=True)
                    return None
                if flush_deadline is None:
                    flush_deadline = time.monotonic() + FLUSH_TIMEOUT_S
                if not conn.inflight and (
                    self.outbox.depth() == 0 or time.monotonic() > flush_deadline
                ):
                    break
                if time.monotonic() > flush_deadline:
                    break
            if self._birth_dirty:
                self._publish_birth(client)
            elif self._status_dirty:
                self._status_dirty = False
                self._publish_status(client)
            self._fill(conn)
            now = time.monotonic()
            if now >= next_metrics:
                next_metrics = now + self.cfg.metrics_interval_s
                client.publish(self.topics.metrics, self._metrics_payload(), qos=0)
            self._wake.wait(min(0.5, max(0.0, next_metrics - time.monotonic())))
        client.publish(
            self.topics.status, messages.status("stopped", self.session), qos=1, retain=True
        ).wait_for_publish(2)
        self._drop(conn)
        return None

    def _publish_birth(self, client: mqtt.Client) -> None:
        self._birth_dirty = False
        self._status_dirty = False
        commands = self._commands.names() if self._commands is not None else []
        client.publish(
            self.topics.birth,
            messages.birth(self.session, self._birth, commands),
            qos=1,
            retain=True,
        )
        if self._commands is not None:
            state = self._commands.config_state_payload()
            if state is not None:
                client.publish(self.topics.config_state, state, qos=1, retain=True)
        self._publish_status(client)

    def _reasons(self) -> list[str]:
        own = ["outbox_full"] * self._outbox_full + ["outbox_failed"] * self._outbox_failed
        own += ["disk_full"] * (self._outbox_failed and self._write_problem == "disk_full")
        own += [self.outbox.problem] if self.outbox.problem else []
        return sorted({*self._alert, *own})

    def _publish_status(self, client: mqtt.Client) -> None:
        reasons = self._reasons()
        client.publish(
            self.topics.status,
            messages.status("alert" if reasons else "online", self.session, reasons),
            qos=1,
            retain=True,
        )

    def _fill(self, conn: _Connection) -> None:
        """Publish the next outbox events, oldest first, up to the in-flight window."""
        room = self.cfg.max_inflight - len(conn.inflight)
        if room <= 0:
            return
        for rowid, _msg_id, payload in self.outbox.after(conn.last_sent, room):
            info = conn.client.publish(self.topics.events, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                conn.lost.set()
                return
            conn.inflight[info.mid] = rowid
            conn.last_sent = rowid

    def _take_acks(self, conn: _Connection) -> None:
        if not conn.acked:
            return
        mids, conn.acked[:] = conn.acked[:], []
        rowids = [r for r in (conn.inflight.pop(m, None) for m in mids) if r is not None]
        self.outbox.remove(rowids)
        self.counters["published"] += len(rowids)
        if self._outbox_full and self.outbox.depth() < 0.9 * self.outbox.max_events:
            self._outbox_full = False  # drained below the bound again
            self._status_dirty = True

    def _drop(self, conn: _Connection, abrupt: bool = False) -> None:
        if abrupt:
            sock = conn.client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        elif not conn.lost.is_set():
            conn.client.disconnect()
        conn.client.loop_stop()
        self._conn = None
        self.state = "offline"

    # -- metrics ----------------------------------------------------------------------------

    def _metrics_payload(self) -> bytes:
        msg: dict[str, Any] = messages.plain(self._loop_metrics)
        usage = _disk_usage(self.data_dir)
        msg.update(
            session=self.session,
            time=time.time(),
            outbox={"depth": self.outbox.depth(), "dropped": self.outbox.dropped()},
            link=dict(self.counters),
            cpu_temp_c=cpu_temperature(),
            storage=usage,
        )
        if self._commands is not None:
            msg["commands"] = self._commands.stats()
        return messages.encode(msg)

    def metrics_snapshot(self) -> dict[str, Any]:
        """What the next metrics message would carry (decoded), for diagnostics."""
        return cbor2.loads(self._metrics_payload())

    # -- commands ---------------------------------------------------------------------------

    def _command_worker(self) -> None:
        while True:
            item = self._cmd_queue.get()
            if item is None:
                return
            try:
                self._commands.run(item)
            except Exception:  # the command path must never take the link down
                log.exception("link: command handling failed")

    def send(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Publish a reply/state on the current connection (QoS 1); False when offline."""
        conn = self._conn
        if conn is None or not conn.connected.is_set() or conn.lost.is_set():
            return False
        return conn.client.publish(topic, payload, qos=1, retain=retain).rc == 0


def cpu_temperature() -> float | None:
    """The SoC temperature in degrees C from the kernel's thermal zone, None where absent."""
    try:
        return round(int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def _disk_usage(path: Path) -> dict[str, int]:
    try:
        u = shutil.disk_usage(path)
    except OSError:
        return {"total_bytes": 0, "free_bytes": 0}
    return {"total_bytes": u.total, "free_bytes": u.free}
