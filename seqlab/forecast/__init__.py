"""Forecasting: the task (task.py: window models and ES-RNN, ensembles, rolling-origin evaluation), the metrics
(metrics.py: sMAPE, MASE, OWA, Naive2), the ``seqlab forecast`` command (cli.py) and the rolling-origin benchmark
beside statsforecast's AutoETS/AutoARIMA/AutoTheta, Comb, Naive2 and seasonal naive (bench.py)."""

from ..data.timeseries import check
from .task import (
    ESRNNTask,
    ForecastConfig,
    Forecasts,
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
    "ESRNNTask",
    "ForecastConfig",
    "ForecastTask",
    "Forecasts",
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
