"""Sequence GANs end to end: TimeGAN trained on series, sampled, and evaluated the way the paper meant to.

    model, run = train_gan(GANConfig(data="sines"))
    x, lengths = sample(run, 1000, seed=0)         # in the data's units, each with its own length
    result = evaluate(run)                          # discriminative and predictive scores, PCA / t-SNE plots

Data: the TimeGAN paper's sines (``sines``: 5 channels, length 24, frequency and phase drawn per channel) or any
file the classifier reads as series (labels ignored). Channels are min-max scaled to [0, 1] with the training
data's range, as in the paper, and generated sequences are scaled back.

Training is its own loop, visible below: TimeGAN alternates four optimisers over three phases, which does not fit
the one-loss loop of seqlab.train. Checkpoints are the same safetensors files; a run is written at the end of each
phase and every ``eval_every`` joint steps (resume is not supported: a GAN run restarts).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import checkpoint
from .data.sequences import by_length, fix_missing, pad
from .data.tables import Columns, read_table
from .data.text import DataError
from .models.timegan import TimeGAN, masked_mse, moments
from .train import pyplot


@dataclass
class GANConfig(Columns):
    data: str = "sines"  # sines | a file of series
    n: int = 10000  # sines only: how many sequences (the paper's 10,000)
    missing: str = "refuse"
    cell: str = "gru"  # the paper's GRU
    hidden: int = 24  # the paper's sines setting (4 x channels, at least 24)
    layers: int = 3
    batch: int = 128
    steps: int = 2000  # per phase: autoencoder, supervisor, joint (the reference code runs tens of thousands)
    lr: float = 1e-3  # Adam, the paper's
    gamma: float = 1.0
    eval_every: int = 500  # joint steps between checkpoints and loss reports
    seed: int = 0


def sines(n: int, T: int = 24, C: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The TimeGAN paper's sines: per channel x_t = sin(f t + p), f ~ U(0, 0.1), p ~ U(0, 0.1), as (C, T) arrays."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return [np.stack([np.sin(rng.uniform(0, 0.1) * t + rng.uniform(0, 0.1)) for _ in range(C)]).astype(np.float32)
            for _ in range(n)]  # fmt: skip


def load_series(cfg: GANConfig) -> tuple[list[np.ndarray], str]:
    """(T_i, C) arrays, unscaled, and a name."""
    if cfg.data == "sines":
        return [s.T.copy() for s in sines(cfg.n, seed=cfg.seed)], "sines"
    table = read_table(cfg.data, cfg)
    if table.kind != "series":
        raise DataError(f"{cfg.data}: holds text; the GAN reads series")
    return fix_missing(table.items, table.names, cfg.missing), cfg.data


class MinMax:
    def __init__(self, lo, hi):
        self.lo, self.hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)

    @classmethod
    def fit(cls, series: list[np.ndarray]) -> MinMax:
        steps = np.concatenate(series)
        return cls(steps.min(0), steps.max(0))

    def __call__(self, s: np.ndarray) -> np.ndarray:
        return (s - self.lo) / np.where(self.hi > self.lo, self.hi - self.lo, 1.0)

    def inverse(self, s: np.ndarray) -> np.ndarray:
        return s * np.where(self.hi > self.lo, self.hi - self.lo, 1.0) + self.lo


def train_gan(cfg: GANConfig, out: str | Path | None = None, echo=print) -> tuple[TimeGAN, Path]:
    if cfg.cell not in ("rnn", "lstm", "gru"):
        raise ValueError(f"cell must be one of rnn, lstm, gru; got {cfg.cell!r}")
    if cfg.layers < 2:
        raise ValueError("layers must be at least 2 (the supervisor has one layer fewer)")
    series, name = load_series(cfg)
    if len(series) < 2:
        raise DataError(f"{name}: needs at least two sequences")
    run = Path(out) if out else Path("runs") / f"gan-{time.strftime('%Y%m%d-%H%M%S')}"
    if run.exists() and any(run.iterdir()):
        raise FileExistsError(f"{run} exists; choose another --out")
    scale = MinMax.fit(series)
    data = [scale(s) for s in series]
    lengths_all = np.array([len(s) for s in data])
    C = data[0].shape[1]
    torch.manual_seed(cfg.seed)
    model = TimeGAN(C, cfg.hidden, cfg.layers, cell=cfg.cell)
    run.mkdir(parents=True, exist_ok=True)
    meta = {"task": "gan", "config": asdict(cfg), "channels": C, "lo": scale.lo.tolist(), "hi": scale.hi.tolist(),
            "lengths": lengths_all.tolist(), "versions": {"torch": torch.__version__,
                                                          "python": platform.python_version()}}  # fmt: skip
    (run / "config.json").write_text(json.dumps(meta, indent=1))
    echo(f"run: {run}\n{name}: {len(data)} sequences, {C} channels, lengths {lengths_all.min()}..{lengths_all.max()}")
    rng = np.random.default_rng(cfg.seed)

    def batch():
        idx = rng.integers(0, len(data), cfg.batch)
        x, lengths = pad([data[i] for i in idx])
        return x, lengths, (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[:, :, None]

    m = model
    adam = lambda *nets: torch.optim.Adam([p for n in nets for p in n.parameters()], lr=cfg.lr)  # noqa: E731
    opt_e, opt_s = adam(m.embedder, m.recovery), adam(m.supervisor)
    opt_g, opt_d = adam(m.generator, m.supervisor), adam(m.discriminator)
    log = open(run / "metrics.jsonl", "a")  # noqa: SIM115 (kept open across the phases, closed below)

    def record(**values):
        log.write(json.dumps(values) + "\n")
        log.flush()

    def save(phase: str, step: int):
        tensors = {f"model.{k}": v for k, v in m.state_dict().items()}
        checkpoint.save(run / "checkpoints" / "last.safetensors", tensors, {"phase": phase, "step": step})

    def supervised(h: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The next-step latent loss: S(h)_t against h_{t+1} over valid pairs."""
        h_next = m.supervisor(h, lengths)
        return masked_mse(h_next[:, :-1], h[:, 1:], mask[:, 1:])

    def reconstruction(h: torch.Tensor, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The autoencoder's loss, 10·sqrt(MSE) of recovery(h) against x, as the paper weighs it."""
        return 10 * masked_mse(m.recovery(h, lengths), x, mask).sqrt()

    t0 = time.monotonic()

    def pretrain(phase: str, optimizer, loss_of) -> float:
        """Phases 1 and 2: ``cfg.steps`` steps of one optimizer on one loss; returns the last loss."""
        for step in range(cfg.steps):
            x, lengths, mask = batch()
            loss = loss_of(x, lengths, mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 100 == 0 or step == cfg.steps - 1:
                record(phase=phase, step=step, loss=loss.item())
        save(phase, cfg.steps)
        return loss.item()

    # phase 1: the autoencoder (embedder + recovery)
    last = pretrain(
        "autoencoder", opt_e, lambda x, lengths, mask: reconstruction(m.embedder(x, lengths), x, lengths, mask)
    )
    echo(f"autoencoder: reconstruction 10·sqrt(MSE) {last:.4f} ({time.monotonic() - t0:.0f} s)")
    # phase 2: the supervisor learns next-step latents of real data
    last = pretrain("supervisor", opt_s,
                    lambda x, lengths, mask: supervised(m.embedder(x, lengths).detach(), lengths, mask))  # fmt: skip
    echo(f"supervisor: next-step latent MSE {last:.5f} ({time.monotonic() - t0:.0f} s)")
    # phase 3: joint training
    bce = F.binary_cross_entropy_with_logits
    for step in range(cfg.steps):
        for _ in range(2):  # two generator (and embedder) steps per discriminator step, as the paper
            x, lengths, mask = batch()
            z = m.noise(x.shape[0], x.shape[1])
            e_hat = m.generator(z, lengths)
            h_hat = m.supervisor(e_hat, lengths)
            x_hat = m.recovery(h_hat, lengths)
            h = m.embedder(x, lengths)
            flat = mask[:, :, 0].bool()
            y_fake, y_fake_e = m.discriminator(h_hat, lengths)[flat], m.discriminator(e_hat, lengths)[flat]
            g_u = bce(y_fake, torch.ones_like(y_fake))
            g_u_e = bce(y_fake_e, torch.ones_like(y_fake_e))
            g_s = supervised(h, lengths, mask)
            (mu_hat, sd_hat), (mu, sd) = moments(x_hat, mask), moments(x, mask)
            g_v = (sd_hat - sd).abs().mean() + (mu_hat - mu).abs().mean()
            g_loss = g_u + cfg.gamma * g_u_e + 100 * g_s.clamp_min(1e-12).sqrt() + 100 * g_v
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            h = m.embedder(x, lengths)
            e_loss = reconstruction(h, x, lengths, mask) + 0.1 * supervised(h, lengths, mask)
            opt_e.zero_grad()
            e_loss.backward()
            opt_e.step()
        x, lengths, mask = batch()
        flat = mask[:, :, 0].bool()
        z = m.noise(x.shape[0], x.shape[1])
        with torch.no_grad():
            e_hat = m.generator(z, lengths)
            h_hat, h = m.supervisor(e_hat, lengths), m.embedder(x, lengths)
        y_real = m.discriminator(h, lengths)[flat]
        y_fake, y_fake_e = m.discriminator(h_hat, lengths)[flat], m.discriminator(e_hat, lengths)[flat]
        d_loss = (bce(y_real, torch.ones_like(y_real)) + bce(y_fake, torch.zeros_like(y_fake))
                  + cfg.gamma * bce(y_fake_e, torch.zeros_like(y_fake_e)))  # fmt: skip
        if d_loss.item() > 0.15:  # the paper's rule: a discriminator that is already winning rests
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            record(phase="joint", step=step, d_loss=d_loss.item(), g_u=g_u.item(), g_s=g_s.item(), g_v=g_v.item(),
                   e_loss=e_loss.item())  # fmt: skip
        if (step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1:
            save("joint", step + 1)
            echo(f"joint step {step + 1}: d {d_loss.item():.3f}, g_u {g_u.item():.3f}, g_s {g_s.item():.5f}, "
                 f"moments {g_v.item():.4f} ({time.monotonic() - t0:.0f} s)")  # fmt: skip
    log.close()
    meta["train_s"] = time.monotonic() - t0
    (run / "config.json").write_text(json.dumps(meta, indent=1))
    return model.eval(), run


def read_run(run: str | Path) -> tuple[GANConfig, dict]:
    return checkpoint.read_run(run, "gan", GANConfig)


def load(run: str | Path) -> tuple[TimeGAN, GANConfig, dict]:
    cfg, saved = read_run(run)
    model = TimeGAN(saved["channels"], cfg.hidden, cfg.layers, cell=cfg.cell)
    tensors, _ = checkpoint.load(Path(run) / "checkpoints" / "last.safetensors")
    checkpoint.restore(tensors, {}, model)
    return model.eval(), cfg, saved


def sample(run: str | Path, n: int, seed: int = 0, scaled: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """n synthetic sequences (T_i, C) with lengths drawn from the training lengths; in the data's units unless
    ``scaled`` (then in [0, 1], as the model sees them)."""
    model, _, saved = load(run)
    gen = torch.Generator().manual_seed(seed)
    pool = torch.tensor(saved["lengths"])
    lengths = pool[torch.randint(0, len(pool), (n,), generator=gen)]
    out: list[np.ndarray] = [np.empty(0)] * n
    scale = MinMax(saved["lo"], saved["hi"])
    for index in by_length(lengths.numpy(), 1024):
        x = model.sample(lengths[index], gen).numpy()
        for row, i in enumerate(index):
            s = x[row, : int(lengths[i])]
            out[i] = s if scaled else scale.inverse(s)
    return out, lengths.numpy()


# ------------------------------------------------------------------------------------------------ evaluation
def _post_hoc(n_in: int, n_out: int, hidden: int):
    from .layers import GRU

    class Post(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.out = GRU(n_in, hidden, batch_first=True), torch.nn.Linear(hidden, n_out)

        def forward(self, x, lengths):
            h, h_n = self.rnn(x, lengths=lengths)
            return self.out(h), self.out(h_n[-1])

    return Post()


def discriminative_score(real: list[np.ndarray], fake: list[np.ndarray], steps: int = 2000, seed: int = 0) -> float:
    """|accuracy - 0.5| of a post-hoc GRU classifier (its last state -> real or synthetic), trained on 80% of the
    two sets and tested on the other 20%. Each sequence is read within its own length — synthetic ones with theirs."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    items = [(s, 1.0) for s in real] + [(s, 0.0) for s in fake]
    order = rng.permutation(len(items))
    cut = int(0.8 * len(items))
    train, test = [items[i] for i in order[:cut]], [items[i] for i in order[cut:]]
    C = real[0].shape[1]
    net = _post_hoc(C, 1, max(C // 2, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        pick = [train[i] for i in rng.integers(0, len(train), 128)]
        x, lengths = pad([p[0] for p in pick])
        logit = net(x, lengths)[1][:, 0]
        loss = F.binary_cross_entropy_with_logits(logit, torch.tensor([p[1] for p in pick]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, lengths = pad([p[0] for p in test])
        pred = (net(x, lengths)[1][:, 0] > 0).float().numpy()
    acc = float((pred == np.array([p[1] for p in test])).mean())
    return abs(acc - 0.5)


def predictive_score(real: list[np.ndarray], fake: list[np.ndarray], steps: int = 5000, seed: int = 0) -> float:
    """Train on synthetic, test on real: a post-hoc GRU reads channels 0..C-2 and predicts the next step of channel
    C-1 (the paper's task); the mean absolute error on real sequences, each within its own length."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    C = real[0].shape[1]
    net = _post_hoc(max(C - 1, 1), 1, max(C // 2, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def split(seqs):
        x, lengths = pad([s[:-1, : max(C - 1, 1)] for s in seqs])
        y, _ = pad([s[1:, C - 1 :] for s in seqs])
        return x, lengths, y

    usable = [s for s in fake if len(s) > 1]
    for _ in range(steps):
        x, lengths, y = split([usable[i] for i in rng.integers(0, len(usable), 128)])
        mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[:, :, None]
        loss = ((net(x, lengths)[0] - y).abs() * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, lengths, y = split([s for s in real if len(s) > 1])
        mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[:, :, None]
        per_seq = ((net(x, lengths)[0] - y).abs() * mask).sum((1, 2)) / mask.sum((1, 2))
    return float(per_seq.mean())


def evaluate(run: str | Path, repeats: int = 5, n: int | None = None, out: Path | None = None,
             steps: tuple[int, int] = (2000, 5000), echo=print) -> dict:  # fmt: skip
    """Discriminative and predictive scores over ``repeats`` runs (mean and std), on the [0, 1]-scaled data as the
    paper computes them, with fresh synthetic samples per repeat; PCA and t-SNE plots with ``out``."""
    cfg, saved = read_run(run)
    real, _ = load_series(cfg)
    scale = MinMax(saved["lo"], saved["hi"])
    real = [scale(s) for s in real]
    n = n or len(real)
    disc, pred = [], []
    for r in range(repeats):
        fake, _ = sample(run, n, seed=1000 + r, scaled=True)
        disc.append(discriminative_score(real[:n], fake, steps[0], seed=r))
        pred.append(predictive_score(real[:n], fake, steps[1], seed=r))
        echo(f"repeat {r}: discriminative {disc[-1]:.3f}, predictive {pred[-1]:.4f}")
    real_pred = [predictive_score(real[:n], real[:n], steps[1], seed=r) for r in range(min(repeats, 2))]
    result = {
        "discriminative": float(np.mean(disc)),
        "discriminative_std": float(np.std(disc)),
        "predictive": float(np.mean(pred)),
        "predictive_std": float(np.std(pred)),
        "predictive_real_on_real": float(np.mean(real_pred)),
        "repeats": repeats,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        fake, _ = sample(run, min(n, 1000), seed=7, scaled=True)
        plot_embeddings(out / "pca-tsne.png", real[: len(fake)], fake)
        (out / "scores.json").write_text(json.dumps(result, indent=1))
    return result


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
