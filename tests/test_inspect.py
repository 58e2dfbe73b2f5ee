"""seqlab inspect: text properties, unit correlations, and the files it writes for a character model."""

import json

import numpy as np
import pytest
import torch

from seqlab import lm
from seqlab.cli import main
from seqlab.data.text import DataError
from seqlab.lm.units import correlations, inspect, text_properties

TEXT = 'print("a (b)", [1, 2])\nx = f(y)  # "quoted"\n' * 30


def test_text_properties():
    p = text_properties('a"b"(c)\nd')
    assert p["inside quotes"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert p["inside brackets"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert p["position in line"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0]


def test_correlations_equal_numpy():
    g = torch.Generator().manual_seed(0)
    states, prop = (
        torch.randn(50, 6, generator=g, dtype=torch.float64),
        torch.randn(50, generator=g, dtype=torch.float64),
    )
    states[:, 3] = 2 * prop + 1  # a unit that tracks the property exactly
    states[:, 4] = 5.0  # a constant unit: r = 0, not NaN
    want = [0.0 if u == 4 else np.corrcoef(states[:, u].numpy(), prop.numpy())[0, 1] for u in range(6)]
    np.testing.assert_allclose(correlations(states, prop).numpy(), want, atol=1e-12)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("insp")
    (root / "t.txt").write_text(TEXT)
    common = {"data": str(root / "t.txt"), "hidden": 16, "embed": 8, "batch": 2, "seq_len": 32, "steps": 20,
              "eval_every": 20, "sample_length": 5, "layers": 2}  # fmt: skip
    quiet = {"progress": False, "echo": lambda s: None}
    char = lm.train_lm(lm.LMConfig(**common), out=str(root / "char"), **quiet)[2]
    word = lm.train_lm(lm.LMConfig(**common, tokenizer="word", vocab_size=30), out=str(root / "word"), **quiet)[2]
    return char, word


def test_inspect_writes_heatmap_page_and_units(runs, tmp_path, capsys):
    char, word = runs
    out = tmp_path / "i"
    assert main(["inspect", str(char), "--text", TEXT[:120], "--units", "3", "--layer", "0", "--out", str(out)]) == 0
    result = json.loads((out / "units.json").read_text())
    assert result["layer"] == 0 and result["units"][0] == 3
    assert set(result["tracking"]) == {"inside quotes", "inside brackets", "position in line"}
    page = (out / "gates.html").read_text()
    assert page.count("<h3>unit ") == len(result["units"]) and 'title="f=' in page
    assert (out / "gates.png").stat().st_size > 1000
    assert main(["inspect", str(char), "--text", "abc", "--out", str(out)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    with pytest.raises(DataError, match="uses the word tokenizer"):
        inspect(str(word), TEXT[:50], None, -1, tmp_path / "w")
    with pytest.raises(ValueError, match=r"--units must lie in \[0, 15\]"):
        inspect(str(char), TEXT[:50], [99], -1, tmp_path / "u")
