"""The hub service's one typed config: command-line options plus the optional store file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmware.link.config import parse_url
from tools.hub.forecast.refresher import RefresherConfig
from tools.hub.homeassistant.config import HomeAssistantConfig
from tools.hub.store_rules import StoreRulesConfig, StoreZoneConfig, check_rules

DEFAULT_DB = "~/.local/share/vigil-hub/hub.sqlite"
DEFAULT_LISTEN = "127.0.0.1:8080"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertsConfig(_Strict):
    min_severity: Literal["info", "notice", "warn", "alert"] = Field(
        "warn", description="events at or above this severity open an alert"
    )


class FloorConfig(_Strict):
    image: str | None = Field(
        None, description="floor plan image (PNG/SVG/JPEG), relative to the store file"
    )
    meters_per_pixel: float | None = Field(None, gt=0, description="the plan's scale")


class UnitPlacement(_Strict):
    unit: str
    name: str | None = None
    x: float | None = Field(None, description="camera position on the plan, pixels")
    y: float | None = None


class CasesConfig(_Strict):
    window_s: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="an event joins a case active within this long (docs/cases.md)",
    )


class WebhookConfig(_Strict):
    url: str = Field(..., description="where each case change is POSTed (http:// or https://)")
    secret_file: str = Field(
        ..., description="file with the HMAC secret (16+ bytes), relative to the store file"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r}: expected http:// or https://")
        return v


class StoreConfig(_Strict):
    """``--store STORE.toml``: settings of this store's hub."""

    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    cases: CasesConfig = Field(default_factory=CasesConfig)
    homeassistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig,
        description="the Home Assistant bridge, with `vigil-hub serve --homeassistant` (docs/homeassistant.md)",
    )
    forecast: RefresherConfig | None = Field(
        None,
        description="nightly incident forecast per zone and hour (docs/forecast.md); off without this table",
    )
    webhook: WebhookConfig | None = Field(
        None, description="the store's incident system: case changes posted here (docs/cases.md)"
    )
    floor: FloorConfig = Field(default_factory=FloorConfig)
    units: list[UnitPlacement] = Field(default_factory=list, description="known units")
    zones: list[StoreZoneConfig] = Field(
        default_factory=list,
        description="zones on the floor plan, metres (the units' [camera.floor]) for the store rules",
    )
    rules: StoreRulesConfig = Field(
        default_factory=StoreRulesConfig,
        description="store-level rules on global ids, with `vigil-hub serve --site` (docs/store.md)",
    )

    @model_validator(mode="after")
    def _rules(self) -> StoreConfig:
        check_rules(self.zones, self.rules)
        return self


class ServeConfig(_Strict):
    mqtt: str = "mqtt://127.0.0.1:1883"
    site: str = "+"
    prefix: str = "vigil"
    db: Path = Path(DEFAULT_DB)
    listen: str = DEFAULT_LISTEN
    key: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    mqtt_ca: str | None = None
    mqtt_cert: str | None = None
    mqtt_key: str | None = None
    store: StoreConfig = Field(default_factory=StoreConfig)
    store_dir: Path | None = None
    max_request_bytes: int = Field(64 * 1024, gt=0)
    homeassistant: bool = False

    @field_validator("mqtt")
    @classmethod
    def _url(cls, v: str) -> str:
        parse_url(v)
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{v!r} is not HOST:PORT")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def load_store(path: Path) -> StoreConfig:
    """Read and validate STORE.toml; every problem named with its key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read --store {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not TOML: {e}") from None
    try:
        return StoreConfig.model_validate(data)
    except ValidationError as e:
        lines = [
            f"{path}: {'.'.join(map(str, err['loc'])) or 'store'}: "
            + err["msg"].removeprefix("Value error, ")
            for err in e.errors()
        ]
        raise ValueError("\n".join(lines)) from None


def build(**options) -> ServeConfig:
    """The config from the command line's options (None = default)."""
    opts = {k: v for k, v in options.items() if v is not None}
    store = opts.pop("store", None)
    if store is not None:
        opts["store"] = load_store(Path(store))
        opts["store_dir"] = Path(store).resolve().parent
    if ("tls_cert" in opts) != ("tls_key" in opts):
        raise ValueError("--tls-cert and --tls-key go together")
    try:
        return ServeConfig.model_validate(opts)
    except ValidationError as e:
        raise ValueError(
            "; ".join(f"--{'-'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        ) from None
