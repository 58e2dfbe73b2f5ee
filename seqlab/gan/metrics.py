"""The TimeGAN paper's post-hoc metrics, each reading every sequence within its own length:
- discriminative score: |accuracy - 0.5| of a GRU classifier telling real from synthetic (0 is best);
- predictive score: train on synthetic, test on real, the mean absolute error of next-step prediction;
- for conditional runs, train-on-synthetic / test-on-real class accuracy beside train-on-real;
and the PCA / t-SNE picture of real against synthetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .. import runs
from ..data.sequences import Labels, by_length, pad
from ..train import pyplot


def _post_hoc(n_in: int, n_out: int, hidden: int, seed: int):
    """The metrics' one-layer GRU, initialised from ``seed`` without touching the global generator: the quick score
    runs inside GAN training, whose noise must not restart from the same seed at every checkpoint."""
    from ..layers import GRU

    class Post(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.out = GRU(n_in, hidden, batch_first=True), torch.nn.Linear(hidden, n_out)

        def forward(self, x, lengths):
            h, h_n = self.rnn(x, lengths=lengths)
            return self.out(h), self.out(h_n[-1])

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Post()


def discriminative_score(real: list[np.ndarray], fake: list[np.ndarray], steps: int = 2000, seed: int = 0) -> float:
    """|accuracy - 0.5| of a post-hoc GRU classifier (its last state -> real or synthetic), trained on 80% of the
    two sets and tested on the other 20%. Each sequence is read within its own length — synthetic ones with theirs."""
    rng = np.random.default_rng(seed)
    items, y = real + fake, np.array([1] * len(real) + [0] * len(fake))
    order = rng.permutation(len(items))
    train, test = order[: int(0.8 * len(items))], order[int(0.8 * len(items)) :]
    C = real[0].shape[1]
    acc = post_hoc_accuracy([items[i] for i in train], y[train], [items[i] for i in test], y[test], 2,
                            hidden=max(C // 2, 1), steps=steps, seed=seed)  # fmt: skip
    return abs(acc - 0.5)


def post_hoc_accuracy(train: list[np.ndarray], train_y: np.ndarray, test: list[np.ndarray], test_y: np.ndarray,
                      classes: int, hidden: int, steps: int, seed: int = 0) -> float:  # fmt: skip
    """Accuracy on ``test`` of a one-layer GRU classifier (last state -> class) trained on ``train`` for ``steps``
    batches of 128 with Adam 1e-3: one logit and binary cross-entropy for two classes (the paper's post-hoc
    discriminator), softmax cross-entropy for more."""
    rng = np.random.default_rng(seed)
    net = _post_hoc(train[0].shape[1], 1 if classes == 2 else classes, hidden, seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def predict(logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, 0] > 0).long() if classes == 2 else logits.argmax(1)

    for _ in range(steps):
        pick = rng.integers(0, len(train), 128)
        x, lengths = pad([train[i] for i in pick])
        logits, target = net(x, lengths)[1], torch.as_tensor(train_y[pick])
        if classes == 2:
            loss = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
        else:
            loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        hits = 0
        for index in by_length(np.array([len(s) for s in test]), 1024):
            x, lengths = pad([test[i] for i in index])
            hits += int((predict(net(x, lengths)[1]).numpy() == test_y[index]).sum())
    return hits / len(test)


def predictive_score(real: list[np.ndarray], fake: list[np.ndarray], steps: int = 5000, seed: int = 0) -> float:
    """Train on synthetic, test on real: a post-hoc GRU reads channels 0..C-2 and predicts the next step of channel
    C-1 through a sigmoid (the paper's task, for data in [0, 1]); the mean absolute error on real sequences, each
    within its own length."""
    rng = np.random.default_rng(seed)
    C = real[0].shape[1]
    net = _post_hoc(max(C - 1, 1), 1, max(C // 2, 1), seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def split(seqs):
        x, lengths = pad([s[:-1, : max(C - 1, 1)] for s in seqs])
        y, _ = pad([s[1:, C - 1 :] for s in seqs])
        return x, lengths, y

    usable = [s for s in fake if len(s) > 1]
    for _ in range(steps):
        x, lengths, y = split([usable[i] for i in rng.integers(0, len(usable), 128)])
        mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[:, :, None]
        loss = ((torch.sigmoid(net(x, lengths)[0]) - y).abs() * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, lengths, y = split([s for s in real if len(s) > 1])
        mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[:, :, None]
        per_seq = ((torch.sigmoid(net(x, lengths)[0]) - y).abs() * mask).sum((1, 2)) / mask.sum((1, 2))
    return float(per_seq.mean())


def class_scores(real, values, classes, fake, fake_labels, steps: int, seed: int) -> tuple[float, float]:
    """For a conditional GAN: does each synthetic sequence look like its class? A post-hoc GRU classifier trained on
    the synthetic sequences and their classes, tested on a held-out 20% of the real ones, beside the same classifier
    trained on the other 80% of the real ones (train-synthetic-test-real against train-real-test-real). The GAN saw
    every real sequence, the held-out ones too, as the paper's setting trains on all of them."""
    labels = Labels(classes)
    y = labels.encode(values, ["sequence"] * len(values))
    order = np.random.default_rng(seed).permutation(len(real))
    train, test = order[: int(0.8 * len(real))], order[int(0.8 * len(real)) :]
    held_out, held_y = [real[i] for i in test], y[test]
    K, hidden = len(classes), max(2 * real[0].shape[1], 16)
    fake_y = labels.encode(fake_labels, ["synthetic"] * len(fake_labels))
    on_fake = post_hoc_accuracy(fake, fake_y, held_out, held_y, K, hidden, steps, seed)
    on_real = post_hoc_accuracy([real[i] for i in train], y[train], held_out, held_y, K, hidden, steps, seed)
    return on_fake, on_real


def plot_embeddings(path: Path, real: list[np.ndarray], fake: list[np.ndarray]) -> None:
    """PCA and t-SNE of real and synthetic sequences, each reduced as the paper does (mean over channels per step,
    padded to the longest with its last value)."""
    plt = pyplot()
    if plt is None:
        return
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    T = max(len(s) for s in real + fake)
    flat = lambda s: np.pad(s.mean(1), (0, T - len(s)), mode="edge")  # noqa: E731
    X = np.stack([flat(s) for s in real + fake])
    colour = ["tab:red"] * len(real) + ["tab:blue"] * len(fake)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    tsne = TSNE(2, perplexity=min(40, len(X) - 1), init="pca", random_state=0)
    for ax, emb, title in ((a, PCA(2).fit_transform(X), "PCA"), (b, tsne.fit_transform(X), "t-SNE")):
        ax.scatter(emb[: len(real), 0], emb[: len(real), 1], s=4, alpha=0.4, c=colour[0], label="real")
        ax.scatter(emb[len(real) :, 0], emb[len(real) :, 1], s=4, alpha=0.4, c=colour[-1], label="synthetic")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    runs.save_figure(fig, path)
