"""Incident forecasts for the hub: expected incidents per zone per hour, with an interval."""

from tools.hub.forecast.history import (
    ONE_ZONE,
    History,
    HistoryError,
    from_records,
    hour_to_iso,
    read_history_csv,
    to_hour,
)
from tools.hub.forecast.model import Explanation, Forecast, ForecastConfig, Forecaster, forecast

__all__ = [
    "ONE_ZONE",
    "Explanation",
    "Forecast",
    "ForecastConfig",
    "Forecaster",
    "History",
    "HistoryError",
    "forecast",
    "from_records",
    "hour_to_iso",
    "read_history_csv",
    "to_hour",
]
