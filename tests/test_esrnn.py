"""ES-RNN: the smoothing against a hand-computed Holt-Winters recursion, the forecast's composition, padded == alone,
training on unequal multiplicative-seasonal series, ensembles, resume, and its refusals."""

import json

import numpy as np
import pytest
import torch

from seqlab.cli import main
from seqlab.data.timeseries import series_set
from seqlab.forecast import ForecastConfig, train_forecaster
from seqlab.forecast.task import model_from
from seqlab.models.esrnn import ESRNN, DilatedStack, parse_dilations, pinball, smooth, smyl_dilations
from seqlab.models.forecaster import Ensemble

SMALL = {"model": "esrnn", "hidden": 16, "layers": 1, "context": 12, "horizon": 6, "season": 12, "steps": 200,
         "eval_every": 50, "patience": None, "batch": 8, "lr": 5e-3, "warmup": 10, "dropout": 0.0}  # fmt: skip


def holt_winters(y, alpha, gamma, s0):
    """Multiplicative Holt-Winters without trend, written out by hand in plain Python floats."""
    m = len(s0)
    s = list(s0)
    levels = []
    for t, v in enumerate(y):
        level = v / s[0] if t == 0 else alpha * v / s[t] + (1 - alpha) * levels[-1]
        levels.append(level)
        s.append(gamma * v / level + (1 - gamma) * s[t])
    assert len(s) == len(y) + m
    return levels, s


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dilated_stack_equals_a_per_step_loop_of_torch_cells(cell):
    """Block (1, 3) then block (2,) with a residual: h_t = cell(x_t, h_{t-d}) written out with torch.nn's cells
    holding the same weights, T not a multiple of any dilation."""
    torch.manual_seed(0)
    stack = DilatedStack(cell, 3, 5, ((1, 3), (2,))).double()
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    got, _ = stack(x)

    def loop(layer, inp, d):
        torch_cell = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(inp.shape[2], 5).double()
        torch_cell.load_state_dict({k.replace("rnn.", "").replace("_l0", ""): v for k, v in layer.state_dict().items()})
        states, out = {}, []
        for t in range(inp.shape[1]):
            prev = states.get(t - d)
            new = torch_cell(inp[:, t], prev)
            states[t] = new
            out.append(new[0] if cell == "lstm" else new)
        return torch.stack(out, 1)

    h1 = loop(stack.layers[1], loop(stack.layers[0], x, 1), 3)
    want = h1 + loop(stack.layers[2], h1, 2)
    torch.testing.assert_close(got, want)
    x2 = x.clone()
    x2[:, 7:] += 1.0  # causal: steps before 7 are unchanged
    torch.testing.assert_close(stack(x2)[0][:, :7], got[:, :7])


def test_dilations_parse_and_follow_smyl():
    assert smyl_dilations(1) == ((1, 2), (2, 6)) and smyl_dilations(12) == ((1, 3), (6, 12))
    assert parse_dilations("auto", 4) == ((1, 2), (4, 8)) and parse_dilations("none", 4) == ()
    assert parse_dilations("1,2;4", 1) == ((1, 2), (4,))
    for bad in ("", "1,0", "a", "1,2;"):
        with pytest.raises(ValueError, match="--dilations must be"):
            parse_dilations(bad, 1)
    assert isinstance(ESRNN(2, 3, 4, 4, dilations=((1, 2), (4, 8))).rnn, DilatedStack)


def multiplicative_series(n=3, seed=0, lengths=(90, 70, 50)):
    """Positive monthly-like series, season proportional to the level (multiplicative), unequal lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(lengths[i % len(lengths)])
        level = (20 + 10 * i) * (1 + 0.01 * t)
        out.append((level * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) * (1 + 0.03 * rng.standard_normal(len(t))))
                   .astype(np.float32))  # fmt: skip
    return out


def test_smoothing_equals_a_hand_computed_holt_winters_recursion():
    rng = np.random.default_rng(0)
    y = rng.uniform(1, 5, (2, 17))
    alpha, gamma = np.array([0.3, 0.8]), np.array([0.1, 0.6])
    s0 = rng.uniform(0.5, 1.5, (2, 4))
    levels, s = smooth(*(torch.tensor(a, dtype=torch.float64) for a in (y, alpha, gamma, s0)))
    for i in range(2):
        want_l, want_s = holt_winters(list(y[i]), alpha[i], gamma[i], list(s0[i]))
        np.testing.assert_allclose(levels[i].numpy(), want_l, rtol=1e-12)
        np.testing.assert_allclose(s[i].numpy(), want_s, rtol=1e-12)
    # alpha = 1: the level is the deseasonalised value itself; gamma = 0: the season never moves
    levels, s = smooth(torch.tensor(y), torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                       torch.tensor(s0))  # fmt: skip
    np.testing.assert_allclose(levels.numpy(), y / np.tile(s0, 5)[:, :17], rtol=1e-12)
    np.testing.assert_allclose(s.numpy(), np.tile(s0, 6)[:, :21], rtol=1e-12)


def test_smoothing_gradients_match_finite_differences():
    y = torch.rand(2, 9, dtype=torch.float64) + 0.5
    alpha = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor([0.2, 0.5], dtype=torch.float64, requires_grad=True)
    s0 = (torch.rand(2, 3, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, g, s: smooth(y, a, g, s), (alpha, gamma, s0))


def test_forecast_is_the_network_output_times_level_and_the_repeated_season():
    torch.manual_seed(0)
    net = ESRNN(2, horizon=7, season=3, context=4, hidden=8, quantiles=(0.5,)).double().eval()
    with torch.no_grad():
        net.series.weight.normal_(0, 0.5)
    y = torch.rand(2, 11, dtype=torch.float64) + 1
    lengths = torch.tensor([11, 8])
    out, _log_l, _log_season = net(y, lengths, torch.arange(2))
    fc = net.forecast(y, lengths, torch.arange(2))
    for i, T in enumerate(lengths.tolist()):
        alpha, gamma, s0 = net.coefficients(torch.tensor([i]))
        levels, s = holt_winters(y[i, :T].tolist(), alpha.item(), gamma.item(), s0[0].tolist())
        season = [s[T - 1 + 1 + (h % 3)] for h in range(7)]  # the last known season, repeated past m
        want = out[i, T - 1, :, 0].exp() * levels[-1] * torch.tensor(season, dtype=torch.float64)
        torch.testing.assert_close(fc[i, :, 0], want)


def test_a_padded_batch_forecasts_each_series_as_if_alone():
    torch.manual_seed(0)
    net = ESRNN(3, horizon=5, season=4, context=6, hidden=8, layers=2).eval()
    with torch.no_grad():
        net.series.weight.normal_(0, 0.3)
    lengths = torch.tensor([20, 9, 14])
    y = torch.rand(3, 20) + 1
    y[1, 9:] = float("nan")  # garbage in the padding
    y[2, 14:] = -5.0
    batch = net.forecast(y, lengths, torch.arange(3))
    for i, T in enumerate(lengths.tolist()):
        alone = net.forecast(y[i : i + 1, :T], lengths[i : i + 1], torch.tensor([i]))
        torch.testing.assert_close(batch[i : i + 1], alone)
    out, log_l, log_season = net(y, lengths, torch.arange(3))
    target, known = net.targets(y, lengths, log_l, log_season)
    loss = pinball(out, target, known, net.quantiles)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.series.weight.grad[:, :2].abs().sum() > 0  # alpha and gamma learn


def test_pinball_loss_on_known_cases():
    pred = torch.tensor([[[[1.0, 1.0]]]])  # (1, 1, 1, Q=2)
    target, known = torch.tensor([[[3.0]]]), torch.ones(1, 1, 1)
    assert pinball(pred, target, known, (0.1, 0.9)).item() == pytest.approx((0.1 * 2 + 0.9 * 2) / 2)
    assert pinball(pred, torch.tensor([[[0.0]]]), known, (0.1, 0.9)).item() == pytest.approx((0.9 + 0.1) / 2)


def test_esrnn_learns_unequal_multiplicative_series_and_beats_seasonal_naive(tmp_path):
    data = series_set(multiplicative_series(lengths=(70, 55, 45)))
    cfg = ForecastConfig(**{**SMALL, "steps": 150})
    _, run = train_forecaster(cfg, data, tmp_path / "r", progress=False, echo=lambda s: None)
    result = json.loads((run / "scores.json").read_text())
    assert result["model"]["mase"] < result["seasonal_naive"]["mase"]
    assert 0 <= result["coverage_80"] <= 1 and "owa" in result["model"]


def test_an_ensemble_holds_its_members_and_member_zero_is_the_single_model(tmp_path):
    data = series_set(multiplicative_series())
    torch.manual_seed(0)
    single = model_from(ForecastConfig(**SMALL), 1, 0, 3)
    torch.manual_seed(0)
    pair = model_from(ForecastConfig(**SMALL, ensemble=2), 1, 0, 3)
    assert isinstance(pair, Ensemble) and len(pair.members) == 2
    for (k, a), b in zip(single.state_dict().items(), pair.members[0].state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not torch.equal(pair.members[0].head.weight, pair.members[1].head.weight)
    cfg = ForecastConfig(**{**SMALL, "steps": 60, "ensemble": 3})
    _, run = train_forecaster(cfg, data, tmp_path / "r", progress=False, echo=lambda s: None)
    result = json.loads((run / "scores.json").read_text())
    spread = result["model"]["member_mase"]
    assert len(spread) == 3 and min(spread) <= max(spread)


def test_rolling_origin_eval_and_predict_of_an_esrnn_run(tmp_path, capsys):
    np.savez(tmp_path / "y.npz", y=np.stack([s[:50, None] for s in multiplicative_series()]))
    run = tmp_path / "run"
    args = ["forecast", "train", str(tmp_path / "y.npz"), "--out", str(run), "--no-progress", "--threads", "1",
            *[f"--{k.replace('_', '-')}={v}" for k, v in {**SMALL, "steps": 40}.items() if v is not None]]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(["forecast", "eval", str(run), str(tmp_path / "y.npz"), "--folds", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["folds"]) == 3 and "coverage_80" in result
    assert result["model"]["mase"] == pytest.approx(np.mean([f["model"]["mase"] for f in result["folds"]]))
    assert main(["forecast", "eval", str(run), str(tmp_path / "y.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == result["folds"][-1]["model"]
    out = tmp_path / "f.csv"
    assert main(["forecast", "predict", str(run), str(tmp_path / "y.npz"), "--out", str(out)]) == 0
    head = out.read_text().splitlines()[0]
    assert head == "id,step,y0,y0_q10,y0_q50,y0_q90"


@pytest.mark.parametrize(
    "y, extra, message",
    [
        (np.where(np.arange(60) == 20, 0.0, 1.0 + np.arange(60) % 5), [], "value 0 at step 20"),
        (np.full(60, 4.0), [], "constant series"),
        (np.arange(1.0, 16.0), [], "too short for esrnn with season 12 and horizon 6"),
        (np.arange(1.0, 12.0), ["--season", "1"], "too short for horizon 6"),
        (np.arange(1.0, 80.0), ["--ensemble", "0"], "--ensemble must be at least 1"),
        (np.arange(1.0, 80.0), ["--quantiles", "0.1,0.9"], "including 0.5"),
    ],
)
def test_bad_input_gets_one_line_and_writes_nothing(tmp_path, capsys, y, extra, message):
    np.save(tmp_path / "y.npy", y)
    args = ["forecast", "train", str(tmp_path / "y.npy"), "--model", "esrnn", "--horizon", "6", "--season", "12",
            "--out", str(tmp_path / "run"), "--no-progress", *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "run").exists()


def test_resumed_esrnn_run_equals_an_uninterrupted_one(tmp_path, check_resume):
    np.savez(tmp_path / "y.npz", y=np.stack([s[:50, None] for s in multiplicative_series()]))
    check_resume(["forecast", "train", str(tmp_path / "y.npz"), "--model", "esrnn", "--hidden", "8", "--context", "12",
                  "--horizon", "6", "--season", "12", "--steps", "60", "--eval-every", "20", "--batch", "2",
                  "--dropout", "0.2", "--ensemble", "2", "--no-progress", "--threads", "1"], 60)  # fmt: skip
