"""Forecasting: the task (task.py), the ``seqlab forecast`` command (cli.py) and the benchmark beside seasonal naive,
SARIMA and ETS (bench.py)."""

from ..data.timeseries import check
from .task import (
    ForecastConfig,
    ForecastTask,
    check_config,
    evaluate,
    load,
    load_data,
    normalize,
    predict,
    read_config,
    scores,
    seasonal_naive,
    train_forecaster,
    write_forecasts,
)

__all__ = [
    "ForecastConfig",
    "ForecastTask",
    "check",
    "check_config",
    "evaluate",
    "load",
    "load_data",
    "normalize",
    "predict",
    "read_config",
    "scores",
    "seasonal_naive",
    "train_forecaster",
    "write_forecasts",
]
