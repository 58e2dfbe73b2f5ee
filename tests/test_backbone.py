"""The backbone factory: one interface for every backbone, and checkpoints from before the factory still load."""

import pytest
import torch

from seqlab.models import Classifier, LanguageModel
from seqlab.models.autoencoder import SequenceAutoencoder
from seqlab.models.backbone import BACKBONES, RECURRENT, backbone, continue_from
from seqlab.models.forecaster import Forecaster
from seqlab.models.memory import MemoryModel
from seqlab.models.timegan import TimeGAN


@pytest.mark.parametrize("name", BACKBONES)
def test_a_sequence_continued_from_the_returned_state_equals_it_whole(name):
    torch.manual_seed(0)
    net = backbone(name, channels=3, hidden=8, layers=2, heads=2).double().eval()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    whole, _ = net(x)
    first, state = net(x[:, :4])
    rest, _ = net(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole)
    assert whole.shape == (2, 9, net.width)


@pytest.mark.parametrize("name", BACKBONES)
def test_continue_from_gives_the_same_step_with_or_without_a_state(name):
    """A training Transformer returns no cache; continue_from then re-reads the grown sequence, which must equal
    continuing from the state an evaluation-mode forward gives."""
    torch.manual_seed(0)
    net = backbone(name, channels=3, hidden=8, layers=2, heads=2).double()
    seq, step = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 1, 3, dtype=torch.float64)
    outs = []
    for training in (True, False):
        net.train(training)
        _, state = net(seq)
        assert (state is None) == (training and name == "transformer")
        h, grown, _ = continue_from(net, seq, step, state)
        assert grown.shape == (2, 6, 3)
        outs.append(h)
    torch.testing.assert_close(outs[0], outs[1])


@pytest.mark.parametrize("name", BACKBONES)
def test_a_padded_row_equals_the_sequence_alone_bidirectional(name):
    torch.manual_seed(0)
    net = backbone(name, channels=2, hidden=8, layers=1, heads=2, bidirectional=True, causal=False).double().eval()
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    x[1, 2:], x[2, 4:] = 1e3, -1e3  # garbage in the padding
    batch, _ = net(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, _ = net(x[b : b + 1, :n], lengths=lengths[b : b + 1])
        torch.testing.assert_close(batch[b : b + 1, :n], alone)


def test_unknown_backbones_and_inputs_are_refused():
    with pytest.raises(ValueError, match="model must be one of rnn, lstm, gru, mingru, minlstm, transformer"):
        backbone("mamba", channels=2)
    with pytest.raises(ValueError, match=r"channels .* or vocab"):
        backbone("gru", channels=2, vocab=5)


# ------------------------------------------------------------------------------------------------ old checkpoints
def old_names(state: dict, moves: dict[str, str]) -> dict:
    """The state dict as seqlab wrote it before the backbone factory: each new prefix replaced by its old one."""
    out = {}
    for key, value in state.items():
        for new, old in moves.items():
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        out[key] = value
    return out


RECURRENT_MOVES = {"backbone.embedding.": "embedding.", "backbone.rnn.": "rnn."}
ATTENTION_MOVES = {"backbone.embedding.": "embedding.", "backbone.project.": "project.",
                   "backbone.transformer.": "transformer."}  # fmt: skip
GAN_MOVES = {f"{net}.backbone.rnn.": f"{net}.rnn."
             for net in ("embedder", "recovery", "generator", "supervisor", "discriminator")}  # fmt: skip
MODELS = {
    "lm lstm": (lambda: LanguageModel(11, "lstm", 4, 6, 2), RECURRENT_MOVES, torch.randint(0, 11, (2, 5))),
    "lm tied gru": (lambda: LanguageModel(11, "gru", 6, 6, 1, tie=True), RECURRENT_MOVES, torch.randint(0, 11, (2, 5))),
    "lm transformer": (
        lambda: LanguageModel(11, "transformer", hidden=8, layers=1, heads=2),
        ATTENTION_MOVES,
        torch.randint(0, 11, (2, 5)),
    ),
    "classifier rnn": (lambda: Classifier(3, channels=2, model="rnn", hidden=4), RECURRENT_MOVES, None),
    "classifier text transformer": (
        lambda: Classifier(3, vocab_size=9, model="transformer", hidden=8, heads=2),
        ATTENTION_MOVES,
        None,
    ),
    "forecaster transformer": (lambda: Forecaster(2, model="transformer", hidden=8, heads=2), ATTENTION_MOVES, None),
    "forecaster gru": (lambda: Forecaster(2, model="gru", hidden=8), RECURRENT_MOVES, None),
    "memory lstm": (lambda: MemoryModel("lstm", 2, 8, 1), RECURRENT_MOVES, None),
    "memory transformer": (lambda: MemoryModel("transformer", 2, 8, 1, heads=2), ATTENTION_MOVES, None),
    "autoencoder": (
        lambda: SequenceAutoencoder(2, "lstm", 6, code=3),
        {"encoder.rnn.": "encoder.", "decoder.rnn.": "decoder."},
        None,
    ),
    "timegan": (lambda: TimeGAN(2, hidden=4, layers=2), GAN_MOVES, None),
}


@pytest.mark.parametrize("case", MODELS)
def test_checkpoints_written_before_the_factory_still_load(case):
    make, moves, _ = MODELS[case]
    torch.manual_seed(0)
    trained = make()
    old = old_names(trained.state_dict(), moves)
    assert set(old) != set(trained.state_dict())  # the oracle really renamed something
    torch.manual_seed(1)
    fresh = make()
    fresh.load_state_dict(old)  # strict: every old key found its place, none is missing
    for (k, a), b in zip(trained.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_old_language_model_checkpoint_gives_the_same_logits():
    make, moves, ids = MODELS["lm tied gru"]
    torch.manual_seed(0)
    trained = make().eval()
    torch.manual_seed(1)
    fresh = make().eval()
    fresh.load_state_dict(old_names(trained.state_dict(), moves))
    assert fresh.head.weight is fresh.backbone.embedding.weight  # still tied after loading
    torch.testing.assert_close(fresh(ids)[0], trained(ids)[0], rtol=0, atol=0)


@pytest.mark.parametrize("cell", RECURRENT)
def test_an_lstm_decoder_starts_from_a_zero_cell_state(cell):
    net = backbone(cell, channels=2, hidden=3, layers=2)
    h0 = torch.ones(2, 4, 3)
    state = net.state_from(h0)
    if cell == "lstm":
        assert state[0] is h0 and torch.equal(state[1], torch.zeros_like(h0))
    else:
        assert state is h0
