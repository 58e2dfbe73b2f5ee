"""Smoke runs of each lab command, and the properties the gradient lab is there to show."""

import csv

from seqlab.cli import main


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_lab_adding_and_copy_write_their_tables_and_continue(tmp_path, capsys):
    out = tmp_path / "adding"
    argv = ["lab", "adding", "--lengths", "6,8", "--seeds", "2", "--steps", "20", "--eval-every", "10", "--hidden",
            "8", "--models", "rnn,lstm", "--out", str(out), "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    rows = read(out / "results.csv")
    assert len(rows) == 2 * 2 * 2 and {r["model"] for r in rows} == {"rnn", "lstm"}
    assert all(abs(float(r["baseline"]) - 1 / 6) < 1e-12 for r in rows)
    assert {p.name for p in out.iterdir()} >= {"table.md", "results.csv", "curves.csv", "loss.png"}
    assert "| 6 | rnn |" in (out / "table.md").read_text()
    steps = {r["step"] for r in read(out / "curves.csv")}
    assert steps == {"10", "20"}
    capsys.readouterr()
    assert main(argv) == 0  # a finished lab is read back, not trained again
    assert read(out / "results.csv")[0]["final_loss"] == rows[0]["final_loss"]
    copy = tmp_path / "copy"
    assert main(["lab", "copy", "--lengths", "4", "--seeds", "1", "--steps", "10", "--eval-every", "10", "--hidden",
                 "8", "--models", "gru", "--out", str(copy), "--threads", "1"]) == 0  # fmt: skip
    (row,) = read(copy / "results.csv")
    assert abs(float(row["baseline"]) - 10 * 2.0794415416798357 / 24) < 1e-9 and "recall_accuracy" in row


def test_lab_gradients_shows_what_forget_bias_and_orthogonal_init_do(tmp_path):
    out = tmp_path / "grad"
    assert main(["lab", "gradients", "--lengths", "20", "--steps", "10", "--out", str(out), "--threads", "1"]) == 0
    rows = read(out / "gradients.csv")
    init = {}
    for r in rows:
        if r["phase"] == "init":
            init.setdefault(r["variant"], {})[int(r["t"])] = float(r["grad_norm"])
    reach = {name: g[0] / g[19] for name, g in init.items()}  # how much of the last step's gradient reaches t = 0
    assert reach["lstm forget bias 0"] < reach["lstm forget bias 1"] < reach["lstm forget bias 3"]
    assert reach["rnn"] < 1e-2 < reach["rnn orthogonal"]
    for cell, plain in (("lstm", "lstm forget bias 1"), ("gru", "gru")):  # the variants keep gradients alive longer
        assert reach[f"{cell} zoneout 0.15"] > 1.3 * reach[plain] and reach[f"{cell} layer norm"] > 10 * reach[plain]
    radius = {r["variant"]: float(r["spectral_radius"]) for r in rows if r["spectral_radius"] and r["phase"] == "init"}
    assert abs(radius["rnn orthogonal"] - 1) < 1e-6 and radius["rnn"] < 1
    assert {r["phase"] for r in rows} == {"init", "after 10 steps"}
    assert (out / "gradients.png").exists()


def test_lab_parity_and_selective_copy_compare_every_family(tmp_path):
    import json
    import math

    out = tmp_path / "parity"
    assert main(["lab", "parity", "--lengths", "5", "--seeds", "1", "--steps", "10", "--eval-every", "10",
                 "--hidden", "8", "--out", str(out), "--threads", "1"]) == 0  # fmt: skip
    rows = read(out / "results.csv")  # by default every family: the task is there to tell them apart
    assert [r["model"] for r in rows] == ["rnn", "lstm", "gru", "mingru", "minlstm", "transformer"]
    assert all(abs(float(r["baseline"]) - math.log(2)) < 1e-12 and 0 <= float(r["final_accuracy"]) <= 1 for r in rows)
    assert "final_accuracy" in (out / "table.md").read_text()
    sel = tmp_path / "selective"
    assert main(["lab", "selective", "--lengths", "12", "--layers", "2", "--seeds", "1", "--steps", "10",
                 "--eval-every", "10", "--hidden", "8", "--models", "mingru,lstm", "--out", str(sel),
                 "--threads", "1"]) == 0  # fmt: skip
    rows = read(sel / "results.csv")
    assert all(abs(float(r["baseline"]) - math.log(8)) < 1e-12 and "recall_accuracy" in r for r in rows)
    config = json.loads((sel / "selective-T12-mingru-seed0" / "config.json").read_text())
    assert config["config"]["layers"] == 2


def test_lab_gradients_refuses_what_it_cannot_record(tmp_path, capsys):
    assert main(["lab", "gradients", "--models", "lstm,mingru", "--lengths", "8", "--steps", "2", "--out",
                 str(tmp_path / "g")]) == 2  # fmt: skip
    assert "leave mingru out of --models" in capsys.readouterr().err
