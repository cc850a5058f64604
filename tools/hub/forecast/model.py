"""Expected incidents per zone per hour: pooled hour-of-week profile x zone share x recent level.

    expected(zone, t) = level(zone) * share(zone) * pooled(t) * zone_shape(zone, t)

* ``pooled(t)``: a Poisson GLM (statsmodels) on the all-zones series with hour-of-day,
  day-of-week, hour-of-day x weekend, annual (two sine/cosine pairs of the week of the
  year: a smooth year in 4 degrees of freedom, not 11 month factors) and named-holiday
  terms, fitted on
  exponentially down-weighted history (half-life ``profile_half_life_weeks``). Counts are
  aggregated per cell with their weight as exposure, which gives the same estimates as the
  hourly fit, in milliseconds.
* ``share`` and ``zone_shape``: each zone's share of the total and its own departures from the
  pooled profile (per hour of day, day of week, hour of week), each a gamma-Poisson posterior
  mean shrunk towards the pooled value with ``zone_prior`` pseudo-incidents: a zone with little
  history follows the pool, a busy one its own pattern.
* ``level``: recent incidents over what the profile expected (half-life
  ``level_half_life_weeks``), shrunk the same way; optionally blended with the level of the
  last ``anchor_weeks`` and a damped log-linear trend (both off: no gain on validation).
* The 80 % interval: negative-binomial quantiles with the over-dispersion seen in the
  last year's daily counts plus the level's own uncertainty (scipy.stats).

Whole days on which the site saw nothing, in runs too long to be chance at its usual rate
(probability under ``gap_probability``), are gaps (units offline, a missing file): left out of
the fit instead of read as quiet days.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from threadpoolctl import threadpool_limits

from tools.hub.forecast.history import History, HistoryError

HOURS_PER_WEEK = 168
_MONDAY_OFFSET = 3  # 1970-01-01 was a Thursday: (day + 3) % 7 == 0 on Mondays


class ForecastConfig(BaseModel):
    """The forecaster's settings; the defaults were chosen on St. Louis 2013-2014 and
    2015-2016 (docs/forecast.md)."""

    model_config = ConfigDict(extra="forbid")
    window_weeks: int = Field(260, ge=4, le=2000, description="history used, at most (weeks)")
    profile_half_life_weeks: float = Field(
        104.0, gt=0, description="half-life of the weights for the hour-of-week profile (weeks)"
    )
    level_half_life_weeks: float = Field(
        13.0, gt=0, description="half-life of the weights for the recent level (weeks)"
    )
    zone_prior: float = Field(
        10.0, ge=0, description="pseudo-incidents pulling a zone's shape to the pooled one"
    )
    level_prior: float = Field(
        20.0, ge=0, description="pseudo-incidents pulling the recent level to the long-run one"
    )
    anchor_weeks: int = Field(
        52, ge=1, le=520, description="the steady level: flat weights over this many weeks"
    )
    anchor_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of the steady level in each zone's level (the rest: the recent one)",
    )
    share_prior: float = Field(1.0, gt=0, description="pseudo-incidents per zone for its share")
    holidays: str | None = Field(
        "US",
        description="country code for named holidays (python-holidays), each with a factor "
        "learnt from the history; None for none",
    )
    holiday_neighbours: bool = Field(
        False,
        description="pooled factors for the eve of and the day after a holiday, and one for "
        "holidays moved to another day (observed)",
    )
    annual: bool = Field(True, description="annual seasonality (needs 2 years of history)")
    annual_harmonics: int = Field(
        2,
        ge=0,
        le=6,
        description="0: 11 month-of-year factors; k: k sine/cosine pairs of the week of year "
        "(2k degrees of freedom, smooth)",
    )
    trend: bool = Field(False, description="damped log-linear trend of the weekly totals")
    trend_damping: float = Field(0.98, gt=0, le=1, description="per-week damping of the trend")
    interval: float = Field(0.8, gt=0, lt=1, description="central interval probability")
    gap_probability: float = Field(
        1e-4, gt=0, lt=1, description="a run of empty days less likely than this is a gap"
    )


@dataclass(frozen=True)
class Forecast:
    """Expected counts and interval bounds, arrays (zones, hours) over ``hours``."""

    hours: np.ndarray  # int64 hour indices
    zones: tuple[str, ...]
    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class Explanation:
    """What the forecast is made of, for a manager: profile, level, factors."""

    profile: np.ndarray  # (zones, 7, 24): hour-of-week factor (mean 1 per zone), Monday first
    weekly_level: np.ndarray  # (zones,): expected incidents per week now
    level_ratio: np.ndarray  # (zones,): recent level / long-run level
    trend_per_year: float  # multiplicative change per year (1.0 without trend)
    holidays: dict[str, float]  # holiday name -> factor on that day
    months: np.ndarray  # (12,) month-of-year factors (ones without annual)
    dispersion: np.ndarray  # (zones,) negative-binomial alpha used for the interval
    gap_days: int


def calendar(hours: np.ndarray) -> dict[str, np.ndarray]:
    """Hour of day, day of week (Monday 0), hour of week, month (0-11), day of year (0-365) and
    day index per hour."""
    day = np.floor_divide(hours, 24)
    dow = (day + _MONDAY_OFFSET) % 7
    hod = hours % 24
    d = np.asarray(day, dtype="datetime64[D]")
    months = d.astype("datetime64[M]").astype(np.int64) % 12
    doy = (d - d.astype("datetime64[Y]")).astype(np.int64)
    return {"hod": hod, "dow": dow, "how": dow * 24 + hod, "month": months, "doy": doy, "day": day}


def holiday_names(days: np.ndarray, country: str | None, neighbours: bool = False) -> np.ndarray:
    """The holiday name of each day index ('' on ordinary days). With ``neighbours``, days
    moved off the date ("(observed)") share one name, and the ordinary days just before and
    after a holiday are "eve of a holiday" and "day after a holiday" (two pooled factors)."""
    out = np.full(len(days), "", dtype=object)
    if not country or len(days) == 0:
        return out
    import holidays  # the hub extra; only needed when a calendar is asked for

    first, last = np.asarray([days.min(), days.max()], dtype="datetime64[D]").astype(object)
    try:
        cal = holidays.country_holidays(country, years=range(first.year - 1, last.year + 2))
    except NotImplementedError:
        raise HistoryError(f"holidays: unknown country code {country!r}") from None
    dates = days.astype("datetime64[D]").astype(object)
    one = dt.timedelta(days=1)
    for i, d in enumerate(dates):
        name = cal.get(d)
        if name and neighbours and "(observed" in name.lower():
            name = "observed holiday"
        elif not name and neighbours:
            if cal.get(d + one):
                name = "eve of a holiday"
            elif cal.get(d - one):
                name = "day after a holiday"
        if name:
            out[i] = name
    return out


def _gap_days(daily: np.ndarray, p: float) -> np.ndarray:
    """Boolean per day: inside a run of empty days that chance would explain less often than p."""
    rate = daily.mean() if len(daily) else 0.0
    gap = np.zeros(len(daily), dtype=bool)
    if rate <= 0:
        return gap
    min_run = int(np.ceil(-np.log(p) / rate))
    empty = np.concatenate([[False], daily == 0, [False]])
    edges = np.flatnonzero(np.diff(empty.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start >= min_run:
            gap[start:stop] = True
    return gap


def _design(
    cal: dict[str, np.ndarray], hol: np.ndarray, n_hol: int, annual: bool, harmonics: int = 0
) -> tuple[np.ndarray, dict[str, slice]]:
    """GLM columns per cell: intercept, hod, dow, hod x weekend, annual (month dummies or
    day-of-year harmonics), holidays (dummies, first level dropped), and where each term is."""
    weekend = (cal["dow"] >= 5)[:, None]
    terms = {
        "const": np.ones((len(hol), 1)),
        "hod": np.eye(24)[cal["hod"]][:, 1:],
        "dow": np.eye(7)[cal["dow"]][:, 1:],
        "hod_weekend": (np.eye(24)[cal["hod"]] * weekend)[:, 1:],
    }
    if annual and harmonics:
        # at the middle of the week of the year (cells per week of year keep the fit small)
        mid = (cal["doy"] // 7 * 7 + 3)[:, None] / 365.25
        angle = 2 * np.pi * mid * np.arange(1, harmonics + 1)[None, :]
        terms["annual"] = np.hstack([np.sin(angle), np.cos(angle)])
    elif annual:
        terms["month"] = np.eye(12)[cal["month"]][:, 1:]
    if n_hol:
        terms["holiday"] = np.eye(n_hol + 1)[hol][:, 1:]
    where, at = {}, 0
    for name, cols in terms.items():
        where[name] = slice(at, at + cols.shape[1])
        at += cols.shape[1]
    return np.hstack(list(terms.values())), where


class Forecaster:
    """Fit on a history up to (not including) hour ``t0``; then ``predict(t1)``."""

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()

    def fit(self, history: History, t0: int) -> Forecaster:
        # The matrices are small: BLAS threads only fight each other (10x slower on 2 cores).
        with threadpool_limits(1, user_api="blas"):
            return self._fit(history, t0)

    def _fit(self, history: History, t0: int) -> Forecaster:
        cfg = self.config
        if len(history.hours) == 0:
            raise HistoryError("history: no incidents to learn from")
        if t0 <= history.first_hour:
            raise HistoryError(
                f"--start: {t0 - history.first_hour} h from the first incident; the window "
                "must begin after the history does"
            )
        start = max((history.first_hour // 24) * 24, t0 - cfg.window_weeks * HOURS_PER_WEEK)
        start = (start // 24) * 24
        self.t0, self.start, self.zones = t0, start, history.zones
        y = history.counts(start, t0)  # (Z, H)
        hours = np.arange(start, t0, dtype=np.int64)
        cal = calendar(hours)
        daily = y.sum(0)
        n_days = (t0 - start + 23) // 24
        daily = np.bincount(cal["day"] - cal["day"][0], weights=daily, minlength=n_days)
        gap = _gap_days(daily, cfg.gap_probability)
        self.gap_days = int(gap.sum())
        observed = ~gap[cal["day"] - cal["day"][0]]
        age = (t0 - hours) / HOURS_PER_WEEK
        w_p = 0.5 ** (age / cfg.profile_half_life_weeks) * observed
        w_l = 0.5 ** (age / cfg.level_half_life_weeks) * observed
        span_weeks = observed.sum() / HOURS_PER_WEEK
        self._annual = cfg.annual and span_weeks >= 104
        names = holiday_names(np.unique(cal["day"]), cfg.holidays, cfg.holiday_neighbours)
        seen = sorted({n for n in names if n})
        self._holiday_ids = {n: i + 1 for i, n in enumerate(seen)}
        hol = self._holiday_of(cal)
        self._fit_pooled(y.sum(0), cal, hol, w_p)
        mu_pool = self._pooled(cal, hol)
        # Zone share and zone shape: gamma-Poisson shrinkage to the pool.
        o_z = (y * w_p).sum(1)
        self.share = (o_z + cfg.share_prior) / (o_z.sum() + cfg.share_prior * len(self.zones))
        mu = self.share[:, None] * mu_pool[None, :]
        self._shape = {}
        for key, n in (("hod", 24), ("dow", 7), ("how", HOURS_PER_WEEK)):
            obs = np.stack([np.bincount(cal[key], weights=w_p * yz, minlength=n) for yz in y])
            exp = np.stack([np.bincount(cal[key], weights=w_p * mz, minlength=n) for mz in mu])
            m = (obs + cfg.zone_prior) / (exp + cfg.zone_prior)
            self._shape[key] = m
            mu = mu * m[:, cal[key]]
        # Recent level, each zone shrunk to the site's, the site's to the long run.
        obs_l, exp_l = (y * w_l).sum(1), (mu * w_l).sum(1)
        site = (obs_l.sum() + cfg.level_prior) / (exp_l.sum() + cfg.level_prior)
        self.level = (obs_l + cfg.level_prior * site) / (exp_l + cfg.level_prior)
        if cfg.anchor_weight:  # blend with the steady level, shrunk the same way
            steady = ((age <= cfg.anchor_weeks) & observed).astype(float)
            obs_s, exp_s = (y * steady).sum(1), (mu * steady).sum(1)
            site_s = (obs_s.sum() + cfg.level_prior) / (exp_s.sum() + cfg.level_prior)
            level_s = (obs_s + cfg.level_prior * site_s) / (exp_s + cfg.level_prior)
            lam = cfg.anchor_weight
            self.level = (1 - lam) * self.level + lam * level_s
            site = (1 - lam) * site + lam * site_s
        self.site_level = site
        self._level_n = obs_l + cfg.level_prior
        self.trend = self._fit_trend(y.sum(0), (mu * self.level[:, None]).sum(0), cal, w_p)
        self._dispersion(y, mu * self.level[:, None], cal, observed)
        return self

    def _holiday_of(self, cal: dict[str, np.ndarray]) -> np.ndarray:
        days = np.unique(cal["day"])
        names = holiday_names(days, self.config.holidays, self.config.holiday_neighbours)
        ids = np.array([self._holiday_ids.get(n, 0) for n in names], dtype=np.int64)
        return ids[np.searchsorted(days, cal["day"])]

    def _cells(self, cal: dict[str, np.ndarray], hol: np.ndarray) -> np.ndarray:
        """One GLM cell per (holiday, month or week of year, hour of week)."""
        season = np.zeros_like(cal["month"])
        if self._annual:
            season = cal["doy"] // 7 if self.config.annual_harmonics else cal["month"]
        return (hol * 366 + season) * HOURS_PER_WEEK + cal["how"]

    def _fit_pooled(self, y: np.ndarray, cal, hol: np.ndarray, w: np.ndarray) -> None:
        import statsmodels.api as sm

        cell = self._cells(cal, hol)
        uniq, inv = np.unique(cell, return_inverse=True)
        exposure = np.bincount(inv, weights=w)
        counts = np.bincount(inv, weights=w * y)
        keep = exposure > 0
        uniq, exposure, counts = uniq[keep], exposure[keep], counts[keep]
        # 2 % pseudo-data at the mean rate: keeps cells with no incidents finite.
        mean_rate = counts.sum() / exposure.sum()
        counts = counts + 0.02 * mean_rate * exposure
        exposure = exposure * 1.02
        ccal = self._cell_calendar(uniq)
        x, self._terms = self._x(ccal)
        used = x.any(0)
        used[0] = True
        self._used = used
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-integer counts: weights, on purpose
            glm = sm.GLM(counts, x[:, used], family=sm.families.Poisson(), exposure=exposure)
            self._beta = glm.fit().params

    def _x(self, ccal: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, slice]]:
        n_hol = len(self._holiday_ids)
        return _design(ccal, ccal["hol"], n_hol, self._annual, self.config.annual_harmonics)

    def _cell_calendar(self, cells: np.ndarray) -> dict[str, np.ndarray]:
        how = cells % HOURS_PER_WEEK
        rest = cells // HOURS_PER_WEEK
        season = rest % 366  # the month, or the week of the year with harmonics
        return {"hod": how % 24, "dow": how // 24, "month": season % 12, "doy": season * 7,
                "hol": rest // 366}  # fmt: skip

    def _pooled(self, cal, hol: np.ndarray) -> np.ndarray:
        cell = self._cells(cal, hol)
        uniq, inv = np.unique(cell, return_inverse=True)
        ccal = self._cell_calendar(uniq)
        x = self._x(ccal)[0][:, self._used]
        return np.exp(x @ self._beta)[inv]

    def _fit_trend(self, y, mu, cal, w) -> float:
        """Weekly log-linear slope of the totals over what level x profile expect (0 when off)."""
        if not self.config.trend:
            return 0.0
        import statsmodels.api as sm

        week = (self.t0 - 1 - np.arange(self.start, self.t0)) // HOURS_PER_WEEK
        obs = np.bincount(week, weights=y * (w > 0))
        exp = np.bincount(week, weights=mu * (w > 0))
        ok = exp > 0
        t = -np.arange(len(obs), dtype=float)[ok]
        weight = 0.5 ** (-t / self.config.profile_half_life_weeks)
        x = sm.add_constant(t - t.mean())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.GLM(
                obs[ok], x, family=sm.families.Poisson(), exposure=exp[ok], var_weights=weight
            ).fit()
        return float(fit.params[1])

    def _dispersion(self, y, mu, cal, observed) -> None:
        """Negative-binomial alpha per zone from the last year's daily counts (moments)."""
        last = (np.arange(self.start, self.t0) >= self.t0 - 52 * HOURS_PER_WEEK) & observed
        d = cal["day"][last] - cal["day"][last][0] if last.any() else np.zeros(0, np.int64)
        alpha = np.zeros(len(self.zones))
        for z in range(len(self.zones)):
            yd = np.bincount(d, weights=y[z][last])
            md = np.bincount(d, weights=mu[z][last])
            if len(md) and (md**2).sum() > 0:
                alpha[z] = max(0.0, (((yd - md) ** 2 - yd).sum()) / (md**2).sum())
        self.dispersion = alpha + 1.0 / self._level_n  # + the level's own relative variance

    def predict(self, t1: int) -> Forecast:
        """Expected counts and the central interval for every hour in [t0, t1)."""
        if t1 <= self.t0:
            raise HistoryError("--end: the window must end after it starts")
        hours = np.arange(self.t0, t1, dtype=np.int64)
        cal = calendar(hours)
        mu = self.share[:, None] * self._pooled(cal, self._holiday_of(cal))[None, :]
        for key, m in self._shape.items():
            mu = mu * m[:, cal[key]]
        mu = mu * self.level[:, None]
        if self.trend:
            h = (hours - self.t0) / HOURS_PER_WEEK
            phi = self.config.trend_damping
            steps = h if phi == 1 else phi * (1 - phi**h) / (1 - phi)
            mu = mu * np.exp(self.trend * steps)[None, :]
        alpha = np.maximum(self.dispersion, 1e-9)[:, None]
        n = 1.0 / alpha
        p = n / (n + mu)
        tail = (1 - self.config.interval) / 2
        low = stats.nbinom.ppf(tail, n, p)
        high = stats.nbinom.ppf(1 - tail, n, p)
        return Forecast(hours, self.zones, mu, low.astype(np.int64), high.astype(np.int64))

    def explain(self) -> Explanation:
        """Profile per zone (a week from next Monday), weekly level, level ratio and factors."""
        day = -(-self.t0 // 24)  # the first midnight at or after t0
        monday = (day + (-(day + _MONDAY_OFFSET)) % 7) * 24
        week = self.predict(monday + HOURS_PER_WEEK).expected[:, monday - self.t0 :]
        weekly = week.sum(1)
        profile = (week / np.maximum(weekly[:, None] / HOURS_PER_WEEK, 1e-12)).reshape(-1, 7, 24)
        beta = np.zeros(len(self._used))
        beta[self._used] = self._beta
        hol = {}
        if "holiday" in self._terms:
            factors = np.exp(beta[self._terms["holiday"]])
            hol = {name: float(factors[i - 1]) for name, i in self._holiday_ids.items()}
        months = np.ones(12)
        if "month" in self._terms:
            months[1:] = np.exp(beta[self._terms["month"]])
        elif "annual" in self._terms:  # the harmonics' mean factor over each month's days
            doy = np.arange(365)
            x = _design({"doy": doy, "hod": doy * 0, "dow": doy * 0, "month": doy * 0},
                        doy * 0, 0, True, self.config.annual_harmonics)[0]  # fmt: skip
            f = np.exp(x[:, self._terms["annual"]] @ beta[self._terms["annual"]])
            m = (np.datetime64("2001-01-01") + doy).astype("datetime64[M]").astype(int) % 12
            months = np.bincount(m, weights=f) / np.bincount(m)
        return Explanation(
            profile=profile,
            weekly_level=weekly,
            level_ratio=self.level,
            trend_per_year=float(np.exp(self.trend * 52)),
            holidays=hol,
            months=months,
            dispersion=self.dispersion,
            gap_days=self.gap_days,
        )


def forecast(history: History, t0: int, t1: int, config: ForecastConfig | None = None) -> Forecast:
    """Fit on the incidents before ``t0`` and forecast [t0, t1): the one-call form."""
    return Forecaster(config).fit(history.before(t0), t0).predict(t1)
