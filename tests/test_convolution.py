"""The masked convolutional backbones keep the length contract: padding never changes a result, batch mates never
change a prediction, and a row of a padded batch equals the same sequence run alone."""

from __future__ import annotations

import pytest
import torch

from seqlab.layers.convolution import MaskedBatchNorm
from seqlab.models import Classifier
from seqlab.models.backbone import CONVOLUTIONAL, backbone

torch.manual_seed(0)


def ragged(lengths, channels=3):
    return [torch.randn(n, channels, dtype=torch.float64) for n in lengths]


def padded(seqs, fill=0.0):
    T = max(len(s) for s in seqs)
    x = torch.full((len(seqs), T, seqs[0].shape[1]), fill, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    return x, torch.tensor([len(s) for s in seqs])


def trained_norms(net, seqs):
    """A few training-mode passes, so the running statistics are not the initial ones (0 and 1)."""
    net.train()
    x, lengths = padded(seqs)
    with torch.no_grad():
        for _ in range(3):
            net(x, lengths=lengths)
    return net.eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_padded_row_equals_the_sequence_alone(name, channels):
    torch.manual_seed(1)
    net = backbone(name, channels=channels, hidden=8, causal=False, bidirectional=True).double()
    seqs = ragged([17, 5, 11, 1], channels)
    trained_norms(net, seqs)
    x, lengths = padded(seqs, fill=7.0)  # garbage in the padding: it must not leak
    with torch.no_grad():
        together, _ = net(x, lengths=lengths)
        for i, s in enumerate(seqs):
            alone, _ = net(s[None], lengths=torch.tensor([len(s)]))
            torch.testing.assert_close(together[i, : len(s)], alone[0], atol=1e-10, rtol=1e-10)
            assert together[i, len(s) :].abs().max() == 0 if len(s) < x.shape[1] else True


@pytest.mark.parametrize("name", CONVOLUTIONAL)
@pytest.mark.parametrize("pooling", ["last", "concat"])
def test_batch_mates_never_change_a_prediction(name, pooling):
    torch.manual_seed(2)
    model = Classifier(4, channels=3, model=name, hidden=8, pooling=pooling).double()
    seqs = ragged([9, 23, 4, 15])
    model.train()
    x, lengths = padded(seqs)
    with torch.no_grad():
        model(x, lengths)
    model.eval()
    with torch.no_grad():
        first = model(*padded(seqs[:2]))
        mixed = model(*padded([seqs[1], ragged([40])[0], seqs[0]]))
    torch.testing.assert_close(first[0], mixed[2], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(first[1], mixed[0], atol=1e-10, rtol=1e-10)


def test_masked_batch_norm_counts_valid_steps_only():
    """In training, its statistics are BatchNorm1d's over the valid steps laid end to end; padding adds nothing."""
    torch.manual_seed(3)
    seqs = ragged([6, 2, 9], channels=4)
    x, lengths = padded(seqs, fill=100.0)
    mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).double()[:, None, :]
    ours = MaskedBatchNorm(4).double().train()
    ref = torch.nn.BatchNorm1d(4).double().train()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2)
        ours.bias.normal_()
        ref.load_state_dict(ours.state_dict())
    got = ours(x.transpose(1, 2), mask)
    flat = torch.cat(seqs).T[None]  # (1, C, sum of lengths)
    want = ref(flat)[0].T
    torch.testing.assert_close(torch.cat([got[i, :, :n].T for i, n in enumerate(lengths)]), want)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert got.transpose(1, 2)[mask.transpose(1, 2).expand_as(got.transpose(1, 2)) == 0].abs().max() == 0


def test_gradients_do_not_depend_on_padding():
    """More padding in a training batch changes no gradient: batch-norm statistics, convolutions and pooling read
    valid steps only (training-mode batch norm couples rows, so the batch is compared with itself, padded further)."""
    torch.manual_seed(4)
    model = Classifier(3, channels=3, model="lstm-fcn", hidden=6, dropout=0.0).double().train()
    seqs = ragged([7, 3, 12])
    grads = []
    for extra in (0, 9):
        x, lengths = padded([*seqs, torch.zeros(12 + extra, 3, dtype=torch.float64)])
        x, lengths = x[:3], lengths[:3]
        model.zero_grad()
        model(x, lengths).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_refuses_causal_and_state(name):
    with pytest.raises(ValueError, match="causal"):
        backbone(name, channels=2)
    net = backbone(name, channels=2, causal=False)
    with pytest.raises(ValueError, match="no state"):
        net(torch.zeros(1, 3, 2), state=torch.zeros(1))


def test_text_through_a_convolutional_backbone():
    torch.manual_seed(5)
    model = Classifier(2, vocab_size=11, model="fcn", hidden=8, embed=5).double().eval()
    a, b = torch.randint(11, (6,)), torch.randint(11, (2,))
    x = torch.zeros(2, 6, dtype=torch.long)
    x[0], x[1, :2] = a, b
    with torch.no_grad():
        both = model(x, torch.tensor([6, 2]))
        torch.testing.assert_close(both[1], model(b[None], torch.tensor([2]))[0])
