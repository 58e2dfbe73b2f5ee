"""The benchmark's measuring tools, and the memory property the bptt backend promises."""

import json

import pytest
import torch

import seqlab
from seqlab import bench
from seqlab.cli import main


@pytest.mark.parametrize("shape", [(8, 50, 16, 32), (3, 17, 5, 8)])
def test_bptt_lstm_saves_exactly_gates_and_states(shape):
    """Saved for backward: activated gates (4H), c and h per step, and the initial state (h0 and c0 share one
    zero tensor); x and the weights are the caller's. torch.nn.LSTM's oneDNN workspace is more than twice that."""
    B, T, I, H = shape
    x = torch.randn(T, B, I, requires_grad=True)
    ours = seqlab.LSTM(I, H, backend="bptt")
    theirs = torch.nn.LSTM(I, H)
    got = bench.saved_bytes(lambda: ours(x)[0], [x, *ours.parameters()])
    assert got == 4 * (T * B * 6 * H + B * H)
    assert got <= 0.5 * bench.saved_bytes(lambda: theirs(x)[0], [x, *theirs.parameters()])


def test_median_ms_alternates_and_takes_medians():
    calls = []
    ms = bench.median_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())


def test_cli_bench_writes_json_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--cells", "rnn", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert {r["variant"] for r in rows} == {"torch.nn", "fused", "bptt"}
    assert {r["mode"] for r in rows} == {"train", "infer"}
    assert all(r["case"].startswith("rnn ") for r in rows)
    assert sum(r["auto"] for r in rows) == len(rows) // 3  # one auto choice per case and mode
    printed = capsys.readouterr().out
    assert "vs torch" in printed and "bptt (auto)" in printed
    before = out.read_text()
    assert main(["bench", "--quick", "--cells", "rnn", "--json", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == before


@pytest.mark.parametrize(
    "argv, message",
    [(["bench", "--repeats", "0"], "--repeats must be at least 1"), (["bench", "--threads", "0"], "--threads must be")],
)
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_rejects_unknown_cells():
    with pytest.raises(SystemExit) as e:
        main(["bench", "--cells", "lstm,transformer"])
    assert e.value.code == 2


def test_scan_bench_times_every_variant_and_counts_what_the_scan_keeps(monkeypatch):
    """The scan keeps every step: minGRU's saved bytes grow with T (unlike a fixed-size state), and every variant of
    the issue's comparison has a row with its parameter count."""
    monkeypatch.setitem(bench.SCAN, "I", 8)
    monkeypatch.setitem(bench.SCAN, "B", 2)
    rows = bench.bench_scan(1, 0, lengths=(16, 64))
    names = [r.variant.split(" (")[0] for r in rows[:5]]
    assert names == ["nn.GRU", "nn.LSTM", "minGRU", "minLSTM", "attention"]
    saved = {(r.case, r.variant.split(" (")[0]): r.saved_mb for r in rows}
    assert saved[("scan 2x64x8x8", "minGRU")] > 3 * saved[("scan 2x16x8x8", "minGRU")] > 0
    assert all(r.ms > 0 and r.gflops > 0 for r in rows)


def test_projection_bench_rows_and_what_the_projected_bptt_keeps(monkeypatch):
    """The projected bptt LSTM keeps gates (4H), c (H) and h (P) per step and its two initial states, nothing
    else (o ⊙ tanh c is recomputed for ∂W_hr); the bench has a row per variant and mode."""
    rows = bench.bench_projection(1, 0, shapes=[(3, 7, 4, 6, 2)])
    assert {(r.mode, r.variant) for r in rows} == {
        (m, v) for m in ("train", "infer", "saved") for v in ("torch.nn", "fused", "bptt")
    }
    B, T, _, H, P = 3, 7, 4, 6, 2
    saved = {r.variant: r.saved_mb * 2**20 for r in rows if r.mode == "saved"}
    assert saved["bptt"] == 4 * (T * B * (5 * H + P) + B * (H + P))
    marked = {(r.mode, r.variant) for r in rows if r.auto}
    assert marked == {("train", "bptt"), ("infer", "fused")}


def test_variants_bench_times_bptt_and_per_step_autograd_beside_the_fused_lstm():
    rows = bench.bench_variants(1, 0, shapes=[(2, 5, 3, 4)])
    names = [r.variant for r in rows]
    assert names[:2] == ["nn.LSTM (fused)", "nn.GRU (fused)"] and len(names) == 2 + 3 * len(bench.VARIANTS)
    assert all(r.ms > 0 and r.ratio > 0 for r in rows)
    summary = bench.variant_summary(rows)
    assert len(summary) == len(bench.VARIANTS)
    assert all(" per-step autograd, " in line and "its Python loop" in line for line in summary)
