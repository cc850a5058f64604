"""The site config: one typed, validated model that also documents itself.

Every field has a description and bounds; unknown keys are refused (``extra="forbid"``) so a
typo is an error, not a silently ignored setting. ``vigil config schema`` prints it all.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from firmware.config.base import (
    Point,
    PosSeconds,
    Section,
    ZonePurpose,
    check_in_image,
    check_polygon,
)
from firmware.config.checks import check_all
from firmware.detect.config import DetectorConfig
from firmware.deter.boards import BoardName
from firmware.deter.config import DeterrenceConfig, DeterrentConfig
from firmware.floor import FloorConfig
from firmware.inputs.config import ContactInputConfig, TillConfig
from firmware.link.config import LinkConfig
from firmware.privacy.config import PrivacyConfig
from firmware.recording.config import RecordingConfig
from firmware.rules.config import RulesConfig, ScheduleConfig
from firmware.track.config import TrackerConfig

RESERVED_UNIT = "store"  # the hub's topic level for store-wide tracks and events


class SiteConfig(Section):
    site_id: str = Field(
        "demo-site",
        description="Store identifier; MQTT topics are vigil/<site_id>/<unit_id>/...",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
    )
    unit_id: str = Field(
        "unit-01",
        description="This camera unit's identifier, unique within the site (not `store`: the hub's own topic level)",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
    )
    timezone: str = Field(
        "UTC", description="IANA time zone of the store, for schedules and quiet hours"
    )
    board: BoardName = Field(
        "pi4",
        description="Board profile from hw/boards/ (pi4, pi5, cm4): which pins exist and which are reserved",
    )

    @field_validator("unit_id")
    @classmethod
    def _not_store(cls, v: str) -> str:
        # <prefix>/<site>/store/... are the hub's store tracks and events (docs/store.md)
        if v.lower() == RESERVED_UNIT:
            raise ValueError(
                f"unit_id {v!r} is reserved: <prefix>/<site>/{RESERVED_UNIT}/ carries the hub's "
                "store tracks and store events; pick another name"
            )
        return v


class CameraConfig(Section):
    source: str = Field(
        "picamera2",
        description="Frame source when `vigil run --source` is not given: 'picamera2', a video file, or a folder of images. Relative paths are relative to the config file.",
    )
    resolution: tuple[
        Annotated[int, Field(ge=64, le=4096)], Annotated[int, Field(ge=64, le=4096)]
    ] = Field(
        (1280, 720), description="Main (recording) stream size, width x height, for picamera2"
    )
    inference_resolution: tuple[
        Annotated[int, Field(ge=32, le=4096)], Annotated[int, Field(ge=32, le=4096)]
    ] = Field(
        (640, 360), description="Low-resolution stream size used for inference, for picamera2"
    )
    fps: Annotated[float, Field(gt=0, le=120)] = Field(
        15.0, description="Frame rate asked of the camera"
    )
    stall_timeout_s: PosSeconds = Field(
        2.0,
        description="A source that delivers no frame for this long is reopened, with a health event",
    )
    reopen_backoff_s: PosSeconds = Field(
        1.0, description="First wait before reopening a failed source; doubles up to 30 s"
    )
    floor: FloorConfig | None = Field(
        None, description="Floor calibration: image foot points -> metres on the store plan"
    )


class ZoneConfig(Section):
    name: str = Field(..., description="Zone name, unique", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    purpose: ZonePurpose = Field(
        "general", description="What the zone is for; rules pick zones by purpose"
    )
    polygon: list[Point] = Field(
        ..., description="At least 3 points, normalised image coordinates (0..1, x right, y down)"
    )
    armed: bool = Field(
        True,
        description="Whether after-hours intrusion watches this zone while the store is closed (hub arm/disarm changes it at run time)",
    )
    inertia_frames: Annotated[int, Field(ge=1, le=250)] = Field(
        3,
        description="Consecutive frames a person's foot point must be inside (or outside) before they count as having entered (or left); stops flicker at the edge",
    )

    @field_validator("polygon")
    @classmethod
    def _polygon_ok(cls, pts: list[Point]) -> list[Point]:
        check_polygon(pts, "a zone")
        if _self_intersects(pts):
            raise ValueError("polygon edges cross each other (self-intersecting)")
        if abs(_area(pts)) < 1e-6:
            raise ValueError("polygon has no area")
        return pts


class LineConfig(Section):
    name: str = Field(..., description="Line name, unique", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    purpose: ZonePurpose = Field("general", description="What the line marks (for example an exit)")
    points: tuple[Point, Point] = Field(
        ...,
        description="Two points, normalised image coordinates; 'in' is crossing from the left of A->B to its right",
    )

    @field_validator("points")
    @classmethod
    def _points_ok(cls, pts: tuple[Point, Point]) -> tuple[Point, Point]:
        check_in_image(pts)
        if pts[0] == pts[1]:
            raise ValueError("the two points are the same")
        return pts


class StorageConfig(Section):
    data_dir: str = Field(
        "/var/lib/vigil", description="Where the unit keeps its outbox, incidents and logs"
    )


Apply = Literal["live", "restart"]


def _section(apply: Apply, factory: Any) -> Any:
    """A top-level section and how a hub ``config/set`` applies it: ``live`` sections are
    rebuilt on the running unit, ``restart`` ones take effect at the next start."""
    return Field(default_factory=factory, json_schema_extra={"apply": apply})


class VigilConfig(Section):
    """The whole site config of one unit."""

    site: SiteConfig = _section("restart", SiteConfig)
    camera: CameraConfig = _section("restart", CameraConfig)
    detector: DetectorConfig = _section("restart", DetectorConfig)
    zones: list[ZoneConfig] = _section("live", list)
    lines: list[LineConfig] = _section("live", list)
    tracker: TrackerConfig = _section("live", TrackerConfig)
    rules: RulesConfig = _section("live", RulesConfig)
    schedule: ScheduleConfig = _section("live", ScheduleConfig)
    deterrents: dict[str, DeterrentConfig] = _section("live", dict)
    deterrence: DeterrenceConfig = _section("live", DeterrenceConfig)
    link: LinkConfig = _section("restart", LinkConfig)
    storage: StorageConfig = _section("restart", StorageConfig)
    privacy: PrivacyConfig = _section("live", PrivacyConfig)
    recording: RecordingConfig = _section("restart", RecordingConfig)
    inputs: dict[str, ContactInputConfig] = Field(
        default_factory=dict,
        description="Store-system dry-contact inputs by name: EAS gate alarms, doors, fire exits, panic buttons (docs/inputs.md)",
        json_schema_extra={"apply": "restart"},
    )
    till: TillConfig | None = Field(
        None,
        description="A till journal (POS lines over serial or TCP), docs/inputs.md",
        json_schema_extra={"apply": "restart"},
    )

    @model_validator(mode="after")
    def _cross_refs(self) -> VigilConfig:
        names = [z.name for z in self.zones] + [ln.name for ln in self.lines]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"zone/line names must be unique; repeated: {', '.join(dup)}")
        zone_names = {z.name for z in self.zones}
        line_names = {ln.name for ln in self.lines}
        for rule_name in type(self.rules).model_fields:
            rule = getattr(self.rules, rule_name)
            for z in getattr(rule, "zones", None) or []:
                if z not in zone_names:
                    raise ValueError(f"rules.{rule_name}.zones names unknown zone {z!r}")
            for key, known in (("exits", set(names)), ("lines", line_names)):
                for z in getattr(rule, key, None) or []:
                    if z not in known:
                        raise ValueError(
                            f"rules.{rule_name}.{key} names unknown zone or line {z!r}"
                        )
            d = getattr(rule, "deterrent", None)
            if d is not None and d not in self.deterrents:
                raise ValueError(f"rules.{rule_name}.deterrent names unknown deterrent {d!r}")
        for name, inp in self.inputs.items():
            if inp.zone is not None and inp.zone not in zone_names:
                raise ValueError(f"inputs.{name}.zone names unknown zone {inp.zone!r}")
        if self.till is not None:
            for key in ("zone", "customer_zone"):
                z = getattr(self.till, key)
                if z not in zone_names:
                    raise ValueError(f"till.{key} names unknown zone {z!r}")
        problems = check_all(self)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self


def section_apply() -> dict[str, Apply]:
    """Each top-level section's name -> 'live' or 'restart' (as declared above)."""
    return {
        name: f.json_schema_extra["apply"]  # type: ignore[index]
        for name, f in VigilConfig.model_fields.items()
    }


def _area(pts: list[Point]) -> float:
    return 0.5 * sum(pts[i][0] * pts[i - 1][1] - pts[i - 1][0] * pts[i][1] for i in range(len(pts)))


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    def orient(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    return (o1 * o2 < 0) and (o3 * o4 < 0)


def _self_intersects(pts: list[Point]) -> bool:
    n = len(pts)
    edges = [(pts[i], pts[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            if _segments_cross(*edges[i], *edges[j]):
                return True
    return False
