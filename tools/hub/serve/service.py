"""`vigil-hub serve`: wires the database, ingest (with its stages and consumers), the MQTT
session and the web app, and runs them under uvicorn."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

from tools.hub.serve import alerts, cases
from tools.hub.serve.auth import RateLimit
from tools.hub.serve.config import ServeConfig
from tools.hub.serve.db import HubDB
from tools.hub.serve.ingest import Ingest, Store
from tools.hub.serve.live import Broadcaster, LiveFeed
from tools.hub.serve.mqtt import HubSession
from tools.hub.serve.views import FloorSource

log = logging.getLogger("vigil-hub")


class Hub:
    """The running service. Other hub components plug in with ``hub.ingest.subscribe(fn,
    kinds)`` (every committed message) and ``hub.floor_sources.append(fn)`` (floor positions)."""

    def __init__(self, cfg: ServeConfig, *, validate: bool = True, client_id: str | None = None):
        self.cfg = cfg
        self.db = HubDB(cfg.db)
        validator = None
        if validate:
            from tools.hub.contract import Validator

            validator = Validator()
        level = alerts.SEVERITIES.index(cfg.store.alerts.min_severity)
        self.webhook = None
        if cfg.store.webhook is not None:
            from tools.hub.serve.webhook import WebhookSender

            secret_path = Path(cfg.store.webhook.secret_file).expanduser()
            if not secret_path.is_absolute() and cfg.store_dir is not None:
                secret_path = cfg.store_dir / secret_path
            try:
                secret = secret_path.read_bytes().strip()
            except OSError as e:
                raise ValueError(f"webhook.secret_file {secret_path}: {e.strerror or e}") from None
            self.webhook = WebhookSender(self.db, cfg.store.webhook.url, secret)
        stages = [
            Store(),
            alerts.AlertStage(level),
            cases.CaseStage(cfg.store.cases.window_s, webhook=self.webhook is not None),
        ]
        self.ingest = Ingest(self.db, stages, validator=validator)
        if self.webhook is not None:
            self.ingest.subscribe(lambda _msg: self.webhook.notify(), {"events"})
        self.live = Broadcaster()
        self.ingest.subscribe(LiveFeed(self.live, lambda i: alerts.get(self.db.read(), i)))
        signer = None
        if cfg.key is not None:
            from firmware.link.signing import Signer

            signer = Signer.load(cfg.key)
        self.session = HubSession(
            cfg.mqtt, cfg.site, self.ingest, prefix=cfg.prefix, client_id=client_id,
            ca=cfg.mqtt_ca, cert=cfg.mqtt_cert, key=cfg.mqtt_key, signer=signer,
        )  # fmt: skip
        self.homeassistant = None
        if cfg.homeassistant:
            from tools.hub.homeassistant import HomeAssistantBridge

            self.homeassistant = HomeAssistantBridge(
                cfg.mqtt, cfg.site, cfg.prefix, signer=signer, cfg=cfg.store.homeassistant,
                ca=cfg.mqtt_ca, cert=cfg.mqtt_cert, key=cfg.mqtt_key, validate=validate,
            )  # fmt: skip
        self.fusion = None
        if cfg.site != "+" and cfg.mqtt.startswith("mqtt://"):
            from tools.hub.store import FuseService
            from tools.hub.store_rules import build_rules

            rules = build_rules(cfg.store.zones, cfg.store.rules)
            self.fusion = FuseService(cfg.mqtt, cfg.site, cfg.prefix, rules=rules)
        self.limit = RateLimit()
        self.floor_sources: list[FloorSource] = []
        self._fusion_stop = threading.Event()
        if self.fusion is not None:
            self.floor_sources.append(self.fusion.people)
        self.known_units = {u.unit for u in cfg.store.units}
        self.forecast = None
        if cfg.store.forecast is not None:
            from tools.hub.forecast.refresher import ForecastRefresher
            from tools.hub.forecast.store import SqliteForecastStore

            store = SqliteForecastStore(self.db.path.with_suffix(".forecast.sqlite"))
            self.forecast = ForecastRefresher(AlertIncidents(self.db), store, cfg.store.forecast)

    def start(self) -> Hub:
        self.ingest.start()
        self.session.start()
        if self.webhook is not None:
            self.webhook.start()
        if self.homeassistant is not None:
            self.homeassistant.start()
        if self.forecast is not None:
            self.forecast.start()
        if self.fusion is not None:
            self.fusion.start()
            threading.Thread(target=self._fusion_ticks, name="hub-fusion", daemon=True).start()
        return self

    def _fusion_ticks(self) -> None:
        """Store-wide identities from the units' tracks topics, published at 5 Hz."""
        while not self._fusion_stop.wait(0.2):
            try:
                self.fusion.tick()
            except Exception:  # noqa: BLE001 - fusion must not stop the hub
                log.exception("fusion tick failed")

    def stop(self) -> None:
        if self.forecast is not None:
            self.forecast.stop()
        self._fusion_stop.set()
        if self.fusion is not None:
            self.fusion.stop()
        if self.homeassistant is not None:
            self.homeassistant.stop()
        self.session.stop()
        self.ingest.stop()
        if self.webhook is not None:
            self.webhook.stop()
        self.db.close()


class AlertIncidents:
    """The forecaster's incidents: the hub's alerts (local opening time, zone)."""

    def __init__(self, db: HubDB) -> None:
        self.db = db

    def incident_times(
        self, since: dt.datetime, until: dt.datetime
    ) -> list[tuple[dt.datetime, str]]:
        rows = (
            self.db.read()
            .execute(
                "SELECT opened_at, zone FROM alerts WHERE opened_at >= ? AND opened_at < ?",
                (since.timestamp(), until.timestamp()),
            )
            .fetchall()
        )
        return [(dt.datetime.fromtimestamp(r[0]), r[1] or "store") for r in rows]
