"""AWD-LSTM's regularisers against oracles: weight-drop equals torch.nn with the same masked W_hh on every backend,
variational dropout uses one mask per sequence, embedding dropout drops whole tokens; and the language model's
flags for them, bad values included."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import seqlab
from seqlab.cli import main
from seqlab.layers import LockedDropout, embedding_dropout
from seqlab.lm import LMConfig
from seqlab.lm.task import model_from

CLASSES = {"lstm": (seqlab.LSTM, nn.LSTM), "gru": (seqlab.GRU, nn.GRU), "rnn": (seqlab.RNN, nn.RNN)}


def twin(kind, layers=2, bidirectional=False, **kw):
    ours, theirs = CLASSES[kind]
    torch.manual_seed(0)
    a = ours(5, 7, layers, batch_first=True, bidirectional=bidirectional, **kw).double()
    b = theirs(5, 7, layers, batch_first=True, bidirectional=bidirectional).double()
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("backend", ["bptt", "fused", "reference"])
def test_weight_drop_equals_torch_nn_with_the_same_masked_recurrent_weights(kind, backend):
    a, b = twin(kind, bidirectional=True, weight_drop=0.4, backend=backend)
    x = torch.randn(3, 9, 5, dtype=torch.float64)
    names = [n for n, _ in a.named_parameters() if n.startswith("weight_hh")]
    torch.manual_seed(11)
    masks = [F.dropout(torch.ones_like(getattr(a, n)), 0.4, training=True) for n in names]  # the call's draws, in order
    torch.manual_seed(11)
    out, _ = a(x)
    with torch.no_grad():
        for n, m in zip(names, masks, strict=True):
            getattr(b, n).mul_(m)
    expected, _ = b(x)  # one fixed weight for every step: the mask is drawn once per call, not per step
    torch.testing.assert_close(out, expected)
    assert any(bool((m == 0).any()) for m in masks)
    out.square().sum().backward()
    expected.square().sum().backward()
    for n, m in zip(names, masks, strict=True):  # ∂L/∂W_raw = ∂L/∂W_dropped ⊙ mask
        torch.testing.assert_close(getattr(a, n).grad, getattr(b, n).grad * m)
    a.eval()
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x)[0], b(x)[0])  # eval: the raw weights


def test_weight_drop_with_lengths_equals_torch_nn_on_each_row_alone():
    a, b = twin("lstm", weight_drop=0.5, backend="fused")
    assert set(a.state_dict()) == set(nn.LSTM(5, 7, 2).state_dict())  # torch.nn's keys: no parametrization
    x, lengths = torch.randn(3, 9, 5, dtype=torch.float64), [9, 4, 1]
    torch.manual_seed(3)
    masks = [F.dropout(torch.ones(28, 7, dtype=torch.float64), 0.5, training=True) for _ in range(2)]
    torch.manual_seed(3)
    padded, _ = a(x, lengths=torch.tensor(lengths))
    with torch.no_grad():
        b.weight_hh_l0.mul_(masks[0])
        b.weight_hh_l1.mul_(masks[1])
    for i, n in enumerate(lengths):
        torch.testing.assert_close(padded[i : i + 1, :n], b(x[i : i + 1, :n])[0])
    assert "weight_drop=0.5" in repr(a)


@pytest.mark.parametrize("backend", ["bptt", "fused"])
def test_locked_dropout_between_layers_is_one_mask_per_sequence(backend):
    a, _ = twin("gru", layers=2, dropout=0.5, locked_dropout=True, backend=backend)
    one = [nn.GRU(5, 7, batch_first=True).double(), nn.GRU(7, 7, batch_first=True).double()]
    for k, layer in enumerate(one):
        layer.load_state_dict(
            {n.replace(f"_l{k}", "_l0"): p for n, p in a.state_dict().items() if n.endswith(f"_l{k}")}
        )
    x = torch.randn(4, 12, 5, dtype=torch.float64)
    torch.manual_seed(5)
    mask = F.dropout(torch.ones(1, 4, 7, dtype=torch.float64), 0.5, training=True)  # time-major (1, B, H)
    torch.manual_seed(5)
    out, _ = a(x)
    h, _ = one[0](x)
    expected, _ = one[1](h * mask.transpose(0, 1))  # the same features dropped at every step of a sequence
    torch.testing.assert_close(out, expected)
    a.locked_dropout = False
    torch.manual_seed(5)
    assert not torch.allclose(a(x)[0], expected)  # the per-step dropout differs


def test_locked_dropout_module_and_embedding_dropout():
    torch.manual_seed(0)
    drop = LockedDropout(0.5)
    x = torch.rand(6, 50, 8) + 0.5
    y = drop(x)
    ratio = y / x  # 0 or 2, constant along time for each (sequence, feature)
    assert torch.equal(ratio, ratio[:, :1].expand_as(ratio)) and set(ratio.unique().tolist()) <= {0.0, 2.0}
    assert 0.2 < float((ratio == 0).float().mean()) < 0.8
    assert torch.equal(drop.eval()(x), x)
    time_major = LockedDropout(0.5, batch_first=False)
    r = time_major(x) / x
    assert torch.equal(r, r[:1].expand_as(r))
    emb = nn.Embedding(10, 4)
    ids = torch.tensor([[1, 2, 1, 3, 2, 1] * 5])
    torch.manual_seed(1)
    out = embedding_dropout(emb, ids, 0.5, training=True)
    for token in (1, 2, 3):  # every occurrence of a token is dropped, or none
        rows = out[ids == token]
        dropped = bool((rows == 0).all())
        assert dropped or torch.allclose(rows, 2 * emb.weight[token].expand_as(rows))
    assert torch.equal(embedding_dropout(emb, ids, 0.5, training=False), emb(ids))
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            LockedDropout(bad)
    with pytest.raises(ValueError, match=r"weight_drop must be a probability in \[0, 1\)"):
        seqlab.LSTM(3, 4, weight_drop=1.0)
    with pytest.raises(TypeError, match="locked_dropout should be of type bool"):
        seqlab.GRU(3, 4, locked_dropout=0.5)


def test_language_model_flags_train_and_refuse_what_conflicts(tmp_path, capsys):
    cfg = LMConfig(
        model="lstm", hidden=16, embed=8, dropout=0.0, weight_drop=0.5, locked_dropout=0.3, embed_dropout=0.1
    )
    model = model_from(cfg, 20).train()
    rnn = model.backbone.rnn
    assert rnn.weight_drop == 0.5 and rnn.locked_dropout and rnn.dropout == 0.3
    ids = torch.randint(0, 20, (4, 30))
    torch.manual_seed(0)
    a, _ = model(ids)
    torch.manual_seed(1)
    b, _ = model(ids)
    assert not torch.allclose(a, b)  # training draws masks
    model.eval()
    torch.testing.assert_close(model(ids)[0], model(ids)[0])
    text = tmp_path / "t.txt"
    text.write_text("abcdefgh " * 400)
    run = tmp_path / "run"
    assert (
        main(
            [
                "lm",
                "train",
                str(text),
                "--hidden",
                "16",
                "--embed",
                "8",
                "--batch",
                "4",
                "--seq-len",
                "16",
                "--steps",
                "30",
                "--eval-every",
                "30",
                "--sample-length",
                "5",
                "--dropout",
                "0",
                "--weight-drop",
                "0.5",
                "--locked-dropout",
                "0.3",
                "--embed-dropout",
                "0.1",
                "--out",
                str(run),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (run / "checkpoints" / "best.safetensors").exists()
    capsys.readouterr()
    bad = [
        (["--locked-dropout", "0.3"], "give --dropout 0 with it"),  # --dropout defaults to 0.25
        (["--model", "transformer", "--weight-drop", "0.5"], "for rnn, lstm and gru, not transformer"),
        (["--model", "mingru", "--embed-dropout", "0.1"], "for rnn, lstm and gru, not mingru"),
        (["--weight-drop", "1"], "--weight-drop must lie in [0, 1)"),
    ]
    for k, (flags, message) in enumerate(bad):
        out = tmp_path / f"bad{k}"
        assert main(["lm", "train", str(text), "--steps", "5", "--out", str(out), "--no-progress", *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()  # refused before anything is written


def test_recipe_awd_sets_its_flags_and_refuses_the_ones_it_sets(tmp_path, capsys):
    import json

    from seqlab.lm.cli import RECIPES

    text = tmp_path / "t.txt"
    text.write_text("abcdefgh " * 400)
    common = ["lm", "train", str(text), "--hidden", "16", "--embed", "8", "--batch", "4", "--seq-len", "16", "--steps",
              "2", "--eval-every", "2", "--sample-length", "0", "--threads", "1", "--no-progress"]  # fmt: skip
    clash = tmp_path / "clash"
    assert main([*common, "--recipe", "awd", "--weight-drop", "0.2", "--out", str(clash)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["seqlab lm: error: --recipe awd sets --weight-drop itself; drop --weight-drop or the recipe"]
    assert not clash.exists()
    run = tmp_path / "run"
    assert main([*common, "--recipe", "awd", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert {k: config[k] for k in RECIPES["awd"]} == RECIPES["awd"]
