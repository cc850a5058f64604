"""Config of the behaviour rules: one section per rule under [rules], plus the store's
opening hours under [schedule] (after-hours intrusion).

Speeds are in person heights per second (the box height in the image), so the defaults
work on any camera without calibration: a walk is about 0.5-1 height/s, a run 1.5-3.
An unknown rule name under [rules] is an error (``extra="forbid"``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from firmware.config.base import (
    NonNegSeconds,
    PosSeconds,
    Section,
    TimeOfDay,
    parse_time_of_day,
)

Stage = Literal["notice", "warn", "alert"]
HeightsPerSecond = Annotated[float, Field(gt=0, le=20)]
Heights = Annotated[float, Field(gt=0, le=20)]


def _deterrent_field() -> object:
    return Field(
        None,
        description="Deterrent output (a key under [deterrents]) to switch when the rule fires",
    )


def _zones_field(default_text: str) -> object:
    return Field(None, description=f"Zone names watched; default: {default_text}")


class LoiteringRule(Section):
    """Someone staying in a zone; time spent on earlier visits counts if they come back soon."""

    enabled: bool = Field(True, description="Run this rule")
    zones: list[str] | None = _zones_field(
        "every zone except till, exit and entrance zones (where waiting is normal)"
    )
    threshold_s: PosSeconds = Field(
        30.0, description="Seconds in a zone before the rule fires (severity 'notice')"
    )
    warn_s: PosSeconds | None = Field(
        None, description="Seconds in the zone for severity 'warn'; default: twice threshold_s"
    )
    alert_s: PosSeconds | None = Field(
        None,
        description="Seconds in the zone for severity 'alert'; default: four times threshold_s",
    )
    return_window_s: NonNegSeconds = Field(
        300.0,
        description="A person who comes back to the same zone within this time keeps the time already spent there (repeated returns count); 0 = every visit starts at zero",
    )
    end_grace_s: NonNegSeconds = Field(
        2.0, description="The situation ends once the person has been out of the zone this long"
    )
    deterrent: str | None = _deterrent_field()
    act_at: Stage = Field("notice", description="Severity stage at which the deterrent is switched")

    @model_validator(mode="after")
    def _stages_ordered(self) -> LoiteringRule:
        if self.warn_s is None:
            self.warn_s = max(2 * self.threshold_s, self.threshold_s)
        if self.alert_s is None:
            self.alert_s = max(4 * self.threshold_s, self.warn_s)
        if not (self.threshold_s <= self.warn_s <= self.alert_s):
            raise ValueError(
                f"stages must not decrease: threshold_s ({self.threshold_s}) <= warn_s ({self.warn_s}) <= alert_s ({self.alert_s})"
            )
        return self


class GrabAndRunRule(Section):
    """Dwell at a high-value zone, then fast movement towards an exit soon after."""

    enabled: bool = Field(True, description="Run this rule")
    zones: list[str] | None = _zones_field("every high_value zone")
    exits: list[str] | None = Field(
        None,
        description="Exit zones or lines; default: every zone or line whose purpose is exit, entrance or fire_exit",
    )
    min_dwell_s: PosSeconds = Field(
        3.0, description="Time at the high-value zone before the dash, in seconds"
    )
    window_s: PosSeconds = Field(
        10.0, description="The dash must start within this time of leaving the high-value zone"
    )
    min_speed: HeightsPerSecond = Field(
        1.3, description="Speed that counts as a dash, in person heights per second"
    )
    towards_cos: Annotated[float, Field(ge=-1, le=1)] = Field(
        0.5,
        description="Cosine of the angle between the motion and the direction to the nearest exit above which the motion is 'towards' it (0.5 = within 60 degrees)",
    )
    deterrent: str | None = _deterrent_field()


class RunningRule(Section):
    """A person moving fast, measured in their own heights per second (box height), so it
    works without calibration: for a 1.7 m person 1 height/s is 1.7 m/s."""

    enabled: bool = Field(True, description="Run this rule")
    min_speed: HeightsPerSecond = Field(
        2.5,
        description="Speed of the box centre above which a person is running, in person heights per second (a walk is 0.5-1, a brisk walk about 1.2, a run 2.5-3: about 4-5 m/s)",
    )
    window_s: PosSeconds = Field(
        0.6, description="Speed is measured over this time window (smooths detector jitter)"
    )
    min_duration_s: PosSeconds = Field(
        0.6, description="The speed must hold this long before the rule fires"
    )
    end_grace_s: NonNegSeconds = Field(
        1.0, description="The situation ends once the person has been slower than this long"
    )
    min_height_px: Annotated[float, Field(ge=1, le=4096)] = Field(
        16.0, description="People smaller than this (pixels) are ignored: their speed is noise"
    )
    after_fight_min_speed: HeightsPerSecond = Field(
        1.0,
        description="Lower speed limit for people in a fight or just out of one (fleeing or chasing), heights per second",
    )
    after_fight_s: NonNegSeconds = Field(
        3.0, description="How long after a fight the lower limit applies to its people"
    )
    deterrent: str | None = _deterrent_field()


class FightRule(Section):
    """Two or more people close together with high, erratic motion relative to each other.

    Sizes are the person's box's longer side (their height when upright; a body length
    seen from overhead), so the rule works on side and overhead views alike."""

    enabled: bool = Field(True, description="Run this rule")
    max_distance: Heights = Field(
        0.9,
        description="People are 'close' when their box centres are nearer than this, in person sizes",
    )
    min_agitation: HeightsPerSecond = Field(
        1.3,
        description="How erratically the pair moves: mean deviation of the steps (of step_s) of their relative position from its mean, plus their box size steps (and with keypoints their wrist motion), in person sizes per second, above which the motion counts as violent (people talking, passing or walking together stay under 1)",
    )
    max_pair_speed: HeightsPerSecond = Field(
        1.2,
        description="The pair's common motion must stay below this (people walking or running together are not fighting), person sizes per second",
    )
    min_size_px: Annotated[float, Field(ge=1, le=4096)] = Field(
        16.0,
        description="People smaller than this (box's longer side, pixels) are ignored: their box jitter is noise",
    )
    crowd_others: Annotated[int, Field(ge=0, le=100)] = Field(
        2,
        description="A pair with at least this many other people within max_distance of its midpoint is in a crowd (people meeting or queueing: the boxes of a dense group jostle) and is not judged; 0 = judge every pair",
    )
    window_s: PosSeconds = Field(1.0, description="Motion is measured over this time window")
    step_s: Annotated[float, Field(gt=0, le=1)] = Field(
        0.2,
        description="Motion is sampled in steps of this length within the window: frame-to-frame steps would measure the detector's box jitter rather than the people",
    )
    min_duration_s: PosSeconds = Field(
        1.0, description="The agitation must hold this long before the rule fires"
    )
    end_grace_s: NonNegSeconds = Field(
        3.0, description="The situation ends once the agitation has stopped this long"
    )
    deterrent: str | None = _deterrent_field()


class FallRule(Section):
    """A quick change to a lying posture, then staying down and still.

    Lying is any of: with pose keypoints, a torso nearer horizontal than vertical; a box
    wider than tall for a person once seen upright (side views); or a box whose height or
    width has grown well past what it was a few seconds before while the person now lies
    still (how a lying body looks from a high or overhead camera: it covers a longer
    stretch of floor)."""

    enabled: bool = Field(True, description="Run this rule")
    lying_ratio: Annotated[float, Field(gt=0, le=10)] = Field(
        1.2,
        description="A box at least this much wider than tall (width/height) counts as lying, if the person was seen upright before (someone bending over a low shelf stays under about 1.1)",
    )
    upright_ratio: Annotated[float, Field(gt=0, le=10)] = Field(
        1.4,
        description="A box at least this much taller than wide (height/width) counts as upright",
    )
    extent_growth: Annotated[float, Field(gt=1, le=5)] = Field(
        1.3,
        description="Lying also when the box's height or width exceeds this factor of its size a few seconds before (the reference_s window) and the person now lies still",
    )
    reference_s: tuple[PosSeconds, PosSeconds] = Field(
        (1.5, 4.0),
        description="The box size before the fall is the median over this window, seconds before now (from, to)",
    )
    still_speed: HeightsPerSecond = Field(
        0.15, description="Below this speed (person heights per second) the person counts as still"
    )
    floor_speed: HeightsPerSecond = Field(
        0.3,
        description="Once down, a person moving slower than this (heights per second: writhing, crawling, trying to get up) is still down; faster, or upright again, ends it. At least still_speed",
    )
    floor_radius: Annotated[float, Field(ge=0, le=5)] = Field(
        0.3,
        description="Once down, the person stays down only within this many body sizes (the box's longer side) of where they went down: moving on the spot, not travelling",
    )
    moving_within_s: PosSeconds = Field(
        3.0,
        description="The person must have been up and moving (or upright) within this time before going down: a fall is sudden",
    )
    min_down_s: PosSeconds = Field(
        3.0, description="Seconds the person must stay down before the rule fires"
    )
    end_grace_s: NonNegSeconds = Field(
        2.0, description="The situation ends once the person has been up this long"
    )
    deterrent: str | None = _deterrent_field()

    @model_validator(mode="after")
    def _window(self) -> FallRule:
        if self.floor_speed < self.still_speed:
            raise ValueError(
                f"floor_speed ({self.floor_speed}) must be at least still_speed ({self.still_speed})"
            )
        a, b = self.reference_s
        if not a < b <= 10:
            raise ValueError(f"reference_s ({a}, {b}) must be (from, to) with from < to <= 10 s")
        return self


class LeftObjectRule(Section):
    """A bag-class object (backpack, handbag, suitcase) that stays put after its owner left."""

    enabled: bool = Field(True, description="Run this rule")
    max_motion: Heights = Field(
        0.3,
        description="The object counts as still while its centre stays within this many object heights of where it settled",
    )
    min_still_s: PosSeconds = Field(
        2.0, description="Seconds the object must be still before it counts as put down"
    )
    owner_distance: Heights = Field(
        1.5,
        description="The owner (the person nearest the object when it was put down) has left when farther than this, in the owner's heights, or no longer tracked",
    )
    min_alone_s: PosSeconds = Field(
        3.0, description="Seconds the object must stay unattended before the rule fires"
    )
    require_owner: bool = Field(
        True,
        description="Only objects seen with a person (carried, or a person within owner_distance when first seen) count; a bag that was always alone (stock on a shelf, a fixture mistaken for a bag) is ignored",
    )
    end_grace_s: NonNegSeconds = Field(
        2.0, description="The situation ends once the object was picked up or gone this long"
    )
    deterrent: str | None = _deterrent_field()


class CrowdingRule(Section):
    """At least N people in a zone for at least T (group loitering)."""

    enabled: bool = Field(True, description="Run this rule")
    zones: list[str] | None = _zones_field("every zone")
    min_people: Annotated[int, Field(ge=2, le=500)] = Field(
        4, description="People in the zone at the same time"
    )
    min_duration_s: PosSeconds = Field(
        30.0, description="Seconds the count must stay at or above min_people"
    )
    end_grace_s: NonNegSeconds = Field(
        5.0, description="The situation ends once the count has been below this long"
    )
    deterrent: str | None = _deterrent_field()


class IntrusionRule(Section):
    """Any person in an armed zone while the schedule says the store is closed."""

    enabled: bool = Field(True, description="Run this rule")
    zones: list[str] | None = _zones_field("every zone (only armed zones are watched)")
    min_duration_s: NonNegSeconds = Field(
        1.0, description="Seconds a person must be in the zone (filters single false detections)"
    )
    end_grace_s: NonNegSeconds = Field(
        5.0, description="The situation ends once nobody has been in the zone this long"
    )
    deterrent: str | None = _deterrent_field()


class FootfallRule(Section):
    """Directional line-crossing counts, dwell time and queue length per zone, per interval."""

    enabled: bool = Field(True, description="Run this rule")
    lines: list[str] | None = Field(None, description="Lines counted; default: every line")
    zones: list[str] | None = _zones_field("every zone")
    crossing_events: bool = Field(
        True, description="Also send one 'line_crossing' event per crossing (not only the counts)"
    )
    interval_s: Annotated[float, Field(ge=10, le=3600)] = Field(
        60.0, description="Aggregation period of the 'footfall' summary events, in seconds"
    )


class EasExitRule(Section):
    """An EAS (security tag) gate alarm with a person in, or leaving through, the gate's zone."""

    enabled: bool = Field(True, description="Run this rule (only inputs of kind eas_gate feed it)")
    window_s: Annotated[float, Field(gt=0, le=60)] = Field(
        5.0,
        description="A person seen in the gate's zone up to this long before or after the alarm is the one who set it off",
    )
    deterrent: str | None = _deterrent_field()


class TillUnattendedRule(Section):
    """A refund, void or no-sale with nobody in the till's customer zone."""

    enabled: bool = Field(True, description="Run this rule (needs a [till])")
    transactions: list[Literal["sale", "refund", "void", "no_sale", "price_override"]] = Field(
        ["refund", "void", "no_sale"],
        description="Transactions that need a customer present",
    )
    window_s: Annotated[float, Field(gt=0, le=120)] = Field(
        5.0,
        description="A customer seen in customer_zone up to this long before or after the transaction counts as present",
    )
    deterrent: str | None = _deterrent_field()


class FireExitOpenRule(Section):
    """A fire-exit door open (its contact active), warn at once and alert when it stays open."""

    enabled: bool = Field(True, description="Run this rule (inputs of kind fire_exit feed it)")
    alert_after_s: PosSeconds = Field(
        30.0, description="Seconds open before the severity rises from 'warn' to 'alert'"
    )
    end_grace_s: NonNegSeconds = Field(
        1.0, description="The situation ends once the door has been closed this long"
    )
    deterrent: str | None = _deterrent_field()


class PanicRule(Section):
    """A panic button pressed: an immediate alert while it is active."""

    enabled: bool = Field(True, description="Run this rule (inputs of kind panic feed it)")
    end_grace_s: NonNegSeconds = Field(
        1.0, description="The situation ends once the button has been released this long"
    )
    deterrent: str | None = _deterrent_field()


class RulesConfig(Section):
    """One section per rule; an unknown rule name is an error."""

    loitering: LoiteringRule = Field(
        default_factory=LoiteringRule, description=LoiteringRule.__doc__
    )
    grab_and_run: GrabAndRunRule = Field(
        default_factory=GrabAndRunRule, description=GrabAndRunRule.__doc__
    )
    running: RunningRule = Field(default_factory=RunningRule, description=RunningRule.__doc__)
    fight: FightRule = Field(default_factory=FightRule, description=FightRule.__doc__)
    fall: FallRule = Field(default_factory=FallRule, description=FallRule.__doc__)
    left_object: LeftObjectRule = Field(
        default_factory=LeftObjectRule, description=LeftObjectRule.__doc__
    )
    crowding: CrowdingRule = Field(default_factory=CrowdingRule, description=CrowdingRule.__doc__)
    intrusion: IntrusionRule = Field(
        default_factory=IntrusionRule, description=IntrusionRule.__doc__
    )
    footfall: FootfallRule = Field(default_factory=FootfallRule, description=FootfallRule.__doc__)
    eas_exit: EasExitRule = Field(default_factory=EasExitRule, description=EasExitRule.__doc__)
    till_unattended: TillUnattendedRule = Field(
        default_factory=TillUnattendedRule, description=TillUnattendedRule.__doc__
    )
    fire_exit_open: FireExitOpenRule = Field(
        default_factory=FireExitOpenRule, description=FireExitOpenRule.__doc__
    )
    panic: PanicRule = Field(default_factory=PanicRule, description=PanicRule.__doc__)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleConfig(Section):
    """Opening hours in local time of [site].timezone. Outside them the store is closed and
    after-hours intrusion watches the armed zones. Without hours the store counts as open
    and only a hub 'arm' command makes intrusion active."""

    open_time: TimeOfDay | None = Field(
        None, description="Opening time, HH:MM; unset = no schedule"
    )
    close_time: TimeOfDay | None = Field(
        None, description="Closing time, HH:MM (earlier than open_time = open past midnight)"
    )
    open_days: list[str] = Field(
        list(_DAYS), description="Days the store opens: mon, tue, wed, thu, fri, sat, sun"
    )
    always_closed: bool = Field(
        False, description="Treat the store as closed at all times (a stock room, a warehouse)"
    )

    @field_validator("open_days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        out = [d.strip().lower()[:3] for d in v]
        bad = [d for d, o in zip(v, out, strict=True) if o not in _DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {', '.join(_DAYS)}")
        return out

    @model_validator(mode="after")
    def _both(self) -> ScheduleConfig:
        if (self.open_time is None) != (self.close_time is None):
            raise ValueError("give both open_time and close_time, or neither")
        if self.open_time is not None and self.open_time == self.close_time:
            raise ValueError("open_time and close_time are the same")
        return self

    @staticmethod
    def minutes(hhmm: str) -> int:
        return parse_time_of_day(hhmm)
