"""Forecasting: metrics on known cases, window normalisation, both output modes, covariates, the command line with
its errors, and the benchmark's loaders and baselines."""

import csv
import json

import numpy as np
import pytest
import torch

from seqlab import forecast
from seqlab import train as train_module
from seqlab.cli import main
from seqlab.data.text import DataError
from seqlab.data.timeseries import read_series, series_set
from seqlab.forecast import (
    ForecastConfig,
    ForecastTask,
    check_config,
    normalize,
    scores,
    seasonal_naive,
    train_forecaster,
)
from seqlab.forecast.task import read_config
from seqlab.models.forecaster import Forecaster, Snapshots, members

SMALL = {"model": "lstm", "hidden": 16, "layers": 1, "context": 24, "horizon": 6, "season": 12, "steps": 150,
         "eval_every": 50, "patience": None, "batch": 32, "lr": 5e-3, "warmup": 10}  # fmt: skip


def seasonal_series(n=2, T=160, seed=0):
    """Monthly-like series: level + trend + a 12-step season + noise, at different levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return [(10 * (i + 1) + 0.05 * t + 3 * np.sin(2 * np.pi * t / 12) + 0.2 * rng.standard_normal(T)).astype(np.float32)
            for i in range(n)]  # fmt: skip


def test_seasonal_naive_and_scores_on_known_cases():
    history = np.arange(24, dtype=np.float64)[:, None] % 12  # a pure 12-season
    assert np.array_equal(seasonal_naive(history, 15, 12)[:, 0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2])
    assert np.array_equal(seasonal_naive(np.array([[1.0], [5.0]]), 3, 1)[:, 0], [5, 5, 5])
    truth = np.array([[[1.0], [2.0]]])
    s = scores(truth, truth + np.array([[[1.0], [-1.0]]]), [np.array([[0.0], [2.0], [4.0]])], 1)
    assert s["mae"] == 1 and s["rmse"] == 1
    assert s["mase"] == pytest.approx(0.5)  # in-sample naive error is 2
    assert s["smape"] == pytest.approx((200 * 1 / 3 + 200 * 1 / 3) / 2)
    perfect = scores(truth, truth, [np.array([[0.0], [1.0]])], 1)
    assert perfect["mae"] == perfect["mase"] == perfect["smape"] == 0


def test_normalize_uses_the_context_only():
    w = torch.tensor([[[1.0], [3.0], [100.0]]])
    z, mean, std = normalize(w, 2)
    assert mean.item() == 2 and std.item() == 1 and z[0, 2, 0].item() == 98
    flat, _, s = normalize(torch.full((1, 3, 1), 5.0), 2)
    assert s.item() == 1 and flat.abs().max() == 0


@pytest.mark.parametrize("model, output", [("gru", "direct"), ("gru", "autoregressive"), ("transformer", "direct")])
def test_forecasts_beat_seasonal_naive_on_a_noisy_seasonal_trend(tmp_path, model, output):
    cfg = ForecastConfig(**{**SMALL, "output": output, "model": model, "heads": 2, "steps": 300})
    _, run = train_forecaster(cfg, series_set(seasonal_series()), tmp_path / "r", progress=False, echo=lambda s: None)
    result = json.loads((run / "scores.json").read_text())
    assert result["model"]["mase"] < result["seasonal_naive"]["mase"]  # the naive forecast misses the trend
    assert (run / "forecast.png").is_file()


def test_rollout_and_direct_shapes_and_a_gaussian_head():
    torch.manual_seed(0)
    for output in ("direct", "autoregressive"):
        for model in ("lstm", "transformer"):
            net = Forecaster(2, covariates=1, horizon=5, model=model, hidden=8, heads=2, output=output, gaussian=True)
            net.eval()
            mean, log_std = net(torch.randn(3, 7, 3), torch.randn(3, 5, 1))
            assert mean.shape == log_std.shape == (3, 5, 2)
    with pytest.raises(ValueError, match="output must be one of"):
        Forecaster(1, output="seq2seq")


def test_autoregressive_rollout_feeds_its_predictions_back():
    torch.manual_seed(0)
    net = Forecaster(1, horizon=4, model="gru", hidden=8, output="autoregressive").eval()
    history = torch.randn(2, 6, 1)
    mean, _ = net(history)
    seq = history
    for j in range(4):  # by hand: one step ahead, appended, again
        h, _ = net.backbone(seq)
        step = net.head(h[:, -1:])
        torch.testing.assert_close(step, mean[:, j : j + 1])
        seq = torch.cat([seq, step], 1)


@pytest.mark.parametrize("model", ["gru", "lstm", "transformer"])
def test_scheduled_sampling_is_teacher_forcing_at_zero_and_the_rollout_at_one(model):
    torch.manual_seed(0)
    net = Forecaster(2, covariates=1, horizon=4, model=model, hidden=8, heads=2, output="autoregressive").eval()
    window, L = torch.randn(3, 10, 3), 6
    forced, _ = net.teacher_forced(window)
    stepwise, _ = net.teacher_forced(window, L, feed_back=1e-30)  # the step-by-step path, never feeding back
    torch.testing.assert_close(stepwise, forced)
    own, _ = net.teacher_forced(window, L, feed_back=1.0)
    rollout, _ = net(window[:, :L], window[:, L:, 2:])
    torch.testing.assert_close(own[:, L - 1 :], rollout)  # every horizon input its own forecast: the rollout
    torch.testing.assert_close(own[:, : L - 1], forced[:, : L - 1])  # the context stays teacher-forced


def test_scheduled_sampling_ramps_and_trains(tmp_path):
    cfg = ForecastConfig(**{**SMALL, "output": "autoregressive", "scheduled_sampling": 0.5, "steps": 300})
    _, run = train_forecaster(cfg, series_set(seasonal_series()), tmp_path / "r", progress=False, echo=lambda s: None)
    result = json.loads((run / "scores.json").read_text())
    assert result["model"]["mase"] < result["seasonal_naive"]["mase"]
    task = ForecastTask.__new__(ForecastTask)
    task.cfg = cfg
    assert [task.feed_back(s) for s in (0, 75, 150, 300)] == [0.0, 0.25, 0.5, 0.5]
    with pytest.raises(ValueError, match="needs --output autoregressive"):
        check_config(ForecastConfig(scheduled_sampling=0.3))
    with pytest.raises(ValueError, match="a probability in"):
        check_config(ForecastConfig(output="autoregressive", scheduled_sampling=1.5))


def test_known_covariates_are_used_for_the_horizon(tmp_path):
    rng = np.random.default_rng(0)
    T = 200
    promo = (rng.uniform(size=T) < 0.2).astype(np.float32)  # a known future event drives the target
    y = (5 + 4 * promo + 0.1 * rng.standard_normal(T)).astype(np.float32)
    data = series_set(y, promo[:, None])
    cfg = ForecastConfig(**{**SMALL, "season": 1, "steps": 400})
    _, run = train_forecaster(cfg, data, tmp_path / "r", progress=False, echo=lambda s: None)
    result = json.loads((run / "scores.json").read_text())
    assert result["model"]["mase"] < 0.5 * result["seasonal_naive"]["mase"]


@pytest.mark.parametrize("extra", [{"loss": "gaussian"}, {}, {"output": "autoregressive"}])
def test_intervals_cover_roughly_their_level(tmp_path, extra):
    """The Gaussian head, the default quantile head and an autoregressive model's sample paths: noise of known
    spread around a sine, so a calibrated 80% interval covers about 80% of the truths."""
    rng = np.random.default_rng(1)
    y = [(np.sin(np.arange(300) / 3) + 0.5 * rng.standard_normal(300)).astype(np.float32) for _ in range(4)]
    cfg = ForecastConfig(**{**SMALL, **extra, "season": 1, "steps": 400})
    _, run = train_forecaster(cfg, series_set(y), tmp_path / "r", progress=False, echo=lambda s: None)
    result = json.loads((run / "scores.json").read_text())
    assert 0.5 <= result["coverage_80"] <= 1.0
    assert result["below"]["0.1"] < result["below"]["0.5"] < result["below"]["0.9"]


def test_loss_kinds_by_default_and_refused_combinations():
    kind = lambda **kw: forecast.task.loss_kind(ForecastConfig(**kw))  # noqa: E731
    assert kind() == "quantile" and kind(output="autoregressive") == "gaussian" and kind(gaussian=True) == "gaussian"
    assert kind(model="esrnn") == "quantile" and kind(loss="mse") == "mse"
    assert kind(loss="old") == "mse" and kind(loss="old", gaussian=True) == "gaussian"  # runs from before --loss
    for bad, message in [({"loss": "pinball"}, "--loss must be one of"),
                         ({"loss": "mse", "gaussian": True}, "contradicts"),
                         ({"loss": "quantile", "output": "autoregressive"}, "sampling paths"),
                         ({"quantiles": "0.1,0.9"}, "including 0.5"),
                         ({"model": "esrnn", "loss": "gaussian"}, "esrnn forecasts")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            check_config(ForecastConfig(**bad))


def test_auto_is_esrnn_where_it_applies_and_else_the_lstm_saying_why():
    said = []
    pick = lambda data, **kw: forecast.task.choose_model(ForecastConfig(**kw), data, said.append)  # noqa: E731
    positive = series_set(seasonal_series(2))
    cfg = pick(positive, horizon=6, season=12)
    assert (cfg.model, cfg.context) == ("esrnn", 12) and "positive" in said[-1]
    with_zero = series_set([np.concatenate([[0.0], s[1:]]).astype(np.float32) for s in seasonal_series(2)])
    cfg = pick(with_zero, horizon=6, season=12)
    assert (cfg.model, cfg.context) == ("lstm", 48) and "esrnn's multiplicative Holt-Winters" in said[-1]
    cfg = pick(series_set(seasonal_series(2), np.ones((2, 160, 1), np.float32)), horizon=6)
    assert cfg.model == "lstm" and "covariates" in said[-1]
    assert pick(positive, output="autoregressive").model == "lstm" and "quantiles directly" in said[-1]
    assert pick(positive, horizon=75, season=12).model == "lstm" and "too short for esrnn" in said[-1]
    assert pick(positive, model="gru", context=7) == ForecastConfig(model="gru", context=7)  # nothing to resolve


def test_cyclic_schedule_restarts_at_each_cycle_end():
    cfg = ForecastConfig(lr=1e-2, min_lr=1e-4, warmup=10)
    ends = train_module.cycle_ends(10, 70, 3)
    assert ends == [30, 50, 70]
    for end in ends[:-1]:
        assert train_module.lr_at(cfg, end, 70, 3) == cfg.lr  # a warm restart
        assert train_module.lr_at(cfg, end - 1, 70, 3) < 2e-4  # the cycle's end: near min_lr, a snapshot's moment
    for step in range(80):  # one cycle is the plain cosine
        progress = min(1.0, max(0, step - 10) / 60)
        want = 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + np.cos(np.pi * progress)) if step >= 10 else None
        if want is not None:
            assert train_module.lr_at(cfg, step, 70) == pytest.approx(want)


@pytest.mark.parametrize("model", ["lstm", "esrnn"])
def test_snapshots_are_taken_at_the_cycle_ends_and_join_the_median(tmp_path, model, monkeypatch):
    taken = []
    keep = Snapshots.keep

    def spy(self, due):
        live = {k: v.clone() for k, v in self.live.state_dict().items()}
        took = keep(self, due)
        if took:
            taken.append((task_step[0], live))
        return took

    task_step = [0]
    real = forecast.task.keep_snapshots
    monkeypatch.setattr(Snapshots, "keep", spy)
    monkeypatch.setattr(forecast.task, "keep_snapshots",
                        lambda m, cfg, step: (task_step.__setitem__(0, step), real(m, cfg, step)))  # fmt: skip
    extra = {"context": 12} if model == "esrnn" else {}
    cfg = ForecastConfig(**{**SMALL, **extra, "model": model, "steps": 70, "warmup": 10, "snapshots": 3,
                            "patience": 5})  # fmt: skip
    _, run = train_forecaster(cfg, series_set(seasonal_series()), tmp_path / "r", progress=False, echo=lambda s: None)
    assert [step for step, _ in taken] == [30, 50]  # the ends of the first two of three cycles
    net = forecast.task.load(run, "last")[0]
    assert isinstance(net, Snapshots) and int(net.filled) == 2 and len(members(net)) == 3
    for j, (_, live) in enumerate(taken):  # each copy is the live model at its cycle's end
        for k, v in net.kept[j].state_dict().items():
            torch.testing.assert_close(v, live[k])
    result = json.loads((run / "scores.json").read_text())
    assert len(result["model"]["member_mase"]) == 3 and read_config(run)[0].patience is None


def test_quantile_head_is_sorted_and_fitted_by_the_pinball_loss():
    torch.manual_seed(0)
    net = Forecaster(2, covariates=1, horizon=5, hidden=8, quantiles=(0.1, 0.5, 0.9))
    q, log_std = net(torch.randn(4, 7, 3), torch.randn(4, 5, 1))
    assert q.shape == (4, 5, 2, 3) and log_std is None and (q.diff(dim=-1) >= 0).all()
    with pytest.raises(ValueError, match="quantile heads"):
        Forecaster(1, output="autoregressive", quantiles=(0.1, 0.5, 0.9))
    task = ForecastTask.__new__(ForecastTask)
    task.cfg = ForecastConfig(quantiles="0.1,0.5,0.9")
    y = torch.randn(4, 5, 2)
    by_hand = torch.stack([torch.maximum(v * (y - q[..., j]), (v - 1) * (y - q[..., j])) for j, v in
                           enumerate((0.1, 0.5, 0.9))]).mean()  # fmt: skip
    torch.testing.assert_close(task._loss(q, None, y), by_hand)


def test_sample_paths_are_the_rollout_without_noise_and_gaussian_at_one_step():
    torch.manual_seed(0)
    net = Forecaster(1, covariates=1, horizon=4, model="gru", hidden=8, output="autoregressive", gaussian=True).eval()
    history, future = torch.randn(2, 6, 2), torch.randn(2, 4, 1)
    with torch.no_grad():
        net.head.weight[1].zero_()
        net.head.bias[1] = -7.0  # sigma = e^-7: every draw is the mean
        paths = net.sample_paths(history, future, 3, torch.Generator().manual_seed(0))
        rollout, _ = net(history, future)
        torch.testing.assert_close(paths, rollout.expand(3, -1, -1, -1), atol=1e-2, rtol=0)
        net.head.bias[1] = 0.0  # sigma = 1 at the first step: its draws are N(mean, 1)
        first = net.sample_paths(history, future, 20000, torch.Generator().manual_seed(0))[:, :, 0, 0]
    assert (first.mean(0) - rollout[:, 0, 0]).abs().max() < 0.05 and (first.std(0) - 1).abs().max() < 0.05


def test_quantile_scores_on_a_known_case():
    truth = np.array([[[0.0], [2.0]]])  # one series, H = 2, C = 1
    q = np.array([[[[-1.0, 0.0, 1.0]], [[-1.0, 0.0, 1.0]]]])  # (1, 2, 1, 3) at 0.1, 0.5, 0.9
    history = [np.array([[0.0], [1.0], [0.0], [1.0]])]  # MASE's scale (m = 1): mean |diff| = 1
    s = forecast.metrics.quantile_scores(truth, q, (0.1, 0.5, 0.9), history, 1)
    assert s["coverage_80"] == 0.5 and s["below"] == {"0.1": 0.0, "0.5": 0.0, "0.9": 0.5}
    assert s["msis_80"] == pytest.approx(np.mean([2.0, 2.0 + 2 / 0.2 * 1.0]))  # width 2, the second 1 above
    pin = np.mean(
        [0.1 * 1, 0.0, 0.1 * 1, 0.1 * 3, 0.5 * 2, 0.9 * 1]
    )  # pinball at each (step, level): q (y - f) or (q - 1) (y - f)
    assert s["sql"] == pytest.approx(2 * pin)


def test_cli_train_eval_predict_with_several_series_in_one_csv(tmp_path, capsys):
    path = tmp_path / "sales.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["store", "month", "sales"])
        for i, s in enumerate(seasonal_series(3)):
            w.writerows([f"s{i}", f"m{t}", f"{v:.4f}"] for t, v in enumerate(s))
    run = tmp_path / "run"
    args = ["forecast", "train", str(path), "--id-column", "store", "--time-column", "month", "--out", str(run),
            "--no-progress"] + [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items() if v is not None]  # fmt: skip
    assert main(args) == 0
    assert "seasonal naive" in capsys.readouterr().out
    assert main(["forecast", "eval", str(run), str(path), "--plot", str(tmp_path / "p.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"model", "seasonal_naive", "coverage_80", "msis_80", "sql"} <= set(result) and (
        tmp_path / "p.png"
    ).is_file()
    assert set(result["below"]) == {"0.1", "0.5", "0.9"}  # the default quantile head's calibration
    assert main(["forecast", "eval", str(run), str(path), "--folds", "2"]) == 0  # rolling origin, the last = the tail
    rolling = json.loads(capsys.readouterr().out)
    assert len(rolling["folds"]) == 2 and rolling["folds"][-1]["model"] == result["model"]
    assert rolling["model"]["mase"] == pytest.approx(np.mean([f["model"]["mase"] for f in rolling["folds"]]))
    assert main(["forecast", "eval", str(run), str(path), "--folds", "40"]) == 2
    assert "before the first of 40 folds" in capsys.readouterr().err
    out = tmp_path / "f.csv"
    assert main(["forecast", "predict", str(run), str(path), "--out", str(out)]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["step"]) for r in rows[:7]] == [("s0", str(h)) for h in range(1, 7)] + [("s1", "1")]
    assert len(rows) == 18 and all(np.isfinite(float(r["y0"])) for r in rows)
    assert all(float(r["y0_q10"]) <= float(r["y0_q50"]) == float(r["y0"]) <= float(r["y0_q90"]) for r in rows)
    assert main(["forecast", "predict", str(run), str(path), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("t,y\n" + "".join(f"{i},{i}\n" for i in range(20)), [], "too short for context 24 \\+ horizon 6"),
        ("t,y\n1,2\n2,x\n", [], "line 3 of .*: y = 'x' is not a number"),
        ("t,y\n" + "".join(f"{i},{'' if i == 50 else i}\n" for i in range(80)), [], "nan at time step 50, channel 0"),
        ("t,y\n1,2\n", ["--targets", "z"], "no target column 'z'"),
        ("t,y\n1,2\n", ["--output", "seq2seq"], "output must be one of direct, autoregressive"),
        (
            "t,y\n" + "".join(f"{i},{i + 1}\n" for i in range(40)),
            ["--season", "36", "--context", "8"],
            "34 steps before the test tail, not more than one season \\(36\\)",
        ),
    ],
)
def test_cli_bad_series_get_one_line_and_exit_2(tmp_path, capsys, content, extra, message):
    import re

    path = tmp_path / "d.csv"
    path.write_text(content)
    args = ["forecast", "train", str(path), "--time-column", "t", "--context", "24", "--horizon", "6",
            "--out", str(tmp_path / "run"), "--no-progress", *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
    assert not (tmp_path / "run").exists() and path.read_text() == content


def test_series_readers_and_channel_checks(tmp_path):
    np.save(tmp_path / "one.npy", np.arange(10.0))
    assert read_series(tmp_path / "one.npy").targets[0].shape == (10, 1)
    np.savez(tmp_path / "many.npz", y=np.zeros((3, 8, 2)), covariates=np.ones((3, 8, 1)))
    many = read_series(tmp_path / "many.npz")
    assert len(many.targets) == 3 and many.channels == 2 and many.n_covariates == 1
    (tmp_path / "c.csv").write_text("t,a,b,k\n1,1,2,0\n2,3,4,1\n")
    table = read_series(tmp_path / "c.csv", time_column="t", covariates="k")
    assert np.array_equal(table.targets[0], [[1, 2], [3, 4]]) and table.times[0] == ["1", "2"]
    with pytest.raises(DataError, match="1 target channels, expected 2"):
        forecast.check(series_set([np.zeros(5)]), channels=2)
    with pytest.raises(DataError, match="covariates must have one row per time step"):
        series_set(np.zeros(5), np.zeros((4, 1)))


def test_benchmark_loaders_and_statistical_baselines():
    from seqlab.data.archives import load_series
    from seqlab.forecast import bench as forecast_bench

    air = load_series("airpassengers")
    assert air.shape == (144,) and air[0] == 112
    sun = load_series("sunspots")
    assert len(sun) == 309
    co2 = load_series("co2")
    assert np.isfinite(co2).all() and 500 < len(co2) < 560  # monthly means of the weekly record, gaps filled
    pred = forecast_bench.sarima(air[:-12], 12, 12)
    assert pred.shape == (12,) and np.abs(pred - air[-12:]).mean() < 60
    assert forecast_bench.ets(air[:-12], 12, 12).shape == (12,)


@pytest.mark.parametrize("extra", [[], ["--model", "lstm", "--snapshots", "3", "--warmup", "5"]])
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, check_resume, extra):
    np.save(tmp_path / "y.npy", seasonal_series(1)[0])
    check_resume(["forecast", "train", str(tmp_path / "y.npy"), "--hidden", "8", "--layers", "2", "--context", "24",
                  "--horizon", "6", "--steps", "80", "--eval-every", "20", "--patience", "1000", "--dropout", "0.3",
                  "--no-progress", "--threads", "1", *extra], 80)  # fmt: skip
