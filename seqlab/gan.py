"""Sequence GANs end to end: TimeGAN trained on series, sampled, and evaluated the way the paper meant to.

    model, run = train_gan(GANConfig(data="sines"))
    x, lengths, _ = sample(run, 1000, seed=0)      # in the data's units, each with its own length
    result = evaluate(run)                          # discriminative and predictive scores, PCA / t-SNE plots

    model, run = train_gan(GANConfig(data="vowels.npz", conditional=True))
    x, lengths, y = sample(run, 100, label=3)       # class 3's sequences, lengths drawn from class 3's

Data: the TimeGAN paper's sines (``sines``: 5 channels, length 24, frequency and phase drawn per channel) or any
file the classifier reads as series (labels used only by a conditional run). Channels are min-max scaled to [0, 1]
with the training data's range, as in the paper, and generated sequences are scaled back.

Training is its own loop, visible below: TimeGAN alternates four optimisers over three phases, which does not fit
the one-loss loop of seqlab.train. Checkpoints are the same safetensors files: ``last`` at the end of each phase and
every ``eval_every`` joint steps, where a quick discriminative score is also taken, and ``best``, the joint-phase
checkpoint with the lowest quick score, which sampling and evaluation use by default (GAN training oscillates).
Resume is not supported: a GAN run restarts.
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
from .data.sequences import Labels, by_length, fix_missing, pad
from .data.tables import Columns, read_table
from .data.text import DataError
from .models.timegan import TimeGAN, masked_mse, moment_loss
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
    steps: int = 10000  # per phase: autoencoder, supervisor, joint (~1 hour on sines; the reference code runs 50,000)
    lr: float = 1e-3  # Adam, the paper's
    gamma: float = 1.0
    conditional: bool = False  # generate per class: the file's labels condition the generator and discriminator
    eval_every: int = 500  # joint steps between checkpoints and loss reports
    seed: int = 0


def sines(n: int, T: int = 24, C: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The TimeGAN paper's sines as (C, T) arrays: per channel x_t = (sin(f t + p) + 1) / 2 with f ~ U(0, 0.1) and
    p ~ U(0, 0.1) — in its units (values in [0.5, 1]), where its scores were computed."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return [np.stack([(np.sin(rng.uniform(0, 0.1) * t + rng.uniform(0, 0.1)) + 1) / 2 for _ in range(C)])
            .astype(np.float32) for _ in range(n)]  # fmt: skip


def load_series(cfg: GANConfig) -> tuple[list[np.ndarray], list | None, str]:
    """(T_i, C) arrays, unscaled; their labels when the run is conditional (else None); and a name."""
    if cfg.data == "sines":
        if cfg.conditional:
            raise DataError("sines have no class labels; --conditional needs a file with a label per sequence")
        return [s.T.copy() for s in sines(cfg.n, seed=cfg.seed)], None, "sines"
    table = read_table(cfg.data, cfg, labels="required" if cfg.conditional else "optional")
    if table.kind != "series":
        raise DataError(f"{cfg.data}: holds text; the GAN reads series")
    series = fix_missing(table.items, table.names, cfg.missing)
    return series, table.labels if cfg.conditional else None, cfg.data


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
    series, values, name = load_series(cfg)
    if len(series) < 2:
        raise DataError(f"{name}: needs at least two sequences")
    labels = Labels.fit(values, name) if values is not None else None
    y_all = labels.encode(values, [name] * len(values)) if labels is not None else None
    run = Path(out) if out else Path("runs") / f"gan-{time.strftime('%Y%m%d-%H%M%S')}"
    if run.exists() and any(run.iterdir()):
        raise FileExistsError(f"{run} exists; choose another --out")
    scale = MinMax.fit(series)
    data = [scale(s) for s in series]
    lengths_all = np.array([len(s) for s in data])
    C = data[0].shape[1]
    torch.manual_seed(cfg.seed)
    model = TimeGAN(C, cfg.hidden, cfg.layers, cell=cfg.cell, classes=len(labels.classes) if labels is not None else 0)
    run.mkdir(parents=True, exist_ok=True)
    meta = {"task": "gan", "config": asdict(cfg), "channels": C, "lo": scale.lo.tolist(), "hi": scale.hi.tolist(),
            "lengths": lengths_all.tolist(), "versions": {"torch": torch.__version__,
                                                          "python": platform.python_version()}}  # fmt: skip
    if labels is not None:  # sampling draws (class, length) pairs from these
        meta |= {"classes": labels.classes.tolist(), "labels": y_all.tolist()}
    (run / "config.json").write_text(json.dumps(meta, indent=1))
    echo(f"run: {run}\n{name}: {len(data)} sequences, {C} channels, lengths {lengths_all.min()}..{lengths_all.max()}"
         + (f", {len(labels.classes)} classes (conditional)" if labels is not None else ""))  # fmt: skip
    rng = np.random.default_rng(cfg.seed)

    def batch():
        idx = rng.integers(0, len(data), cfg.batch)
        x, lengths = pad([data[i] for i in idx])
        y = torch.as_tensor(y_all[idx]) if y_all is not None else None
        return x, lengths, (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[:, :, None], y

    m = model
    adam = lambda *nets: torch.optim.Adam([p for n in nets for p in n.parameters()], lr=cfg.lr)  # noqa: E731
    opt_e, opt_s = adam(m.embedder, m.recovery), adam(m.supervisor)
    opt_g, opt_d = adam(m.generator, m.supervisor), adam(m.discriminator)
    log = open(run / "metrics.jsonl", "a")  # noqa: SIM115 (kept open across the phases, closed below)

    def record(**values):
        log.write(json.dumps(values) + "\n")
        log.flush()

    def save(phase: str, step: int, name: str = "last", **info):
        tensors = {f"model.{k}": v for k, v in m.state_dict().items()}
        checkpoint.save(run / "checkpoints" / f"{name}.safetensors", tensors, {"phase": phase, "step": step, **info})

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
            x, lengths, mask, _ = batch()
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

    def discriminate(*latents: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor, y) -> list[torch.Tensor]:
        """The discriminator's logits on valid steps for each batch of latents, in one pass over them all."""
        k = len(latents)
        logits = m.discriminate(torch.cat(latents), lengths.repeat(k), None if y is None else y.repeat(k))
        return [part[mask[:, :, 0].bool()] for part in logits.chunk(k)]

    best = float("inf")
    for step in range(cfg.steps):
        for _ in range(2):  # two generator (and embedder) steps per discriminator step, as the paper
            x, lengths, mask, y = batch()
            e_hat, h_hat = m.generate(m.noise(x.shape[0], x.shape[1]), lengths, y)
            x_hat = m.recovery(h_hat, lengths)
            h = m.embedder(x, lengths)
            y_fake, y_fake_e = discriminate(h_hat, e_hat, lengths=lengths, mask=mask, y=y)
            g_u = bce(y_fake, torch.ones_like(y_fake))
            g_u_e = bce(y_fake_e, torch.ones_like(y_fake_e))
            g_s = supervised(h, lengths, mask)
            g_v = moment_loss(x_hat, x, mask)
            g_loss = g_u + cfg.gamma * g_u_e + 100 * g_s.clamp_min(1e-12).sqrt() + 100 * g_v
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            h = m.embedder(x, lengths)
            e_loss = reconstruction(h, x, lengths, mask) + 0.1 * supervised(h, lengths, mask)
            opt_e.zero_grad()
            e_loss.backward()
            opt_e.step()
        x, lengths, mask, y = batch()
        with torch.no_grad():
            e_hat, h_hat = m.generate(m.noise(x.shape[0], x.shape[1]), lengths, y)
            h = m.embedder(x, lengths)
        y_real, y_fake, y_fake_e = discriminate(h, h_hat, e_hat, lengths=lengths, mask=mask, y=y)
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
            # A quick discriminative score (the paper's post-hoc classifier, 1,000 steps, up to 1,000 sequences a
            # side) to follow the GAN's progress; `seqlab gan eval` computes the full one.
            some = slice(0, 1000)
            fake = generate(
                m, lengths_all[some], torch.Generator().manual_seed(step), None if y_all is None else y_all[some]
            )
            score = discriminative_score(data[some], fake, 1000)
            record(phase="joint", step=step + 1, discriminative_quick=score)
            if score < best:  # GAN training oscillates: keep the checkpoint the quick score liked best
                best = score
                save("joint", step + 1, "best", discriminative_quick=score)
            echo(f"joint step {step + 1}: d {d_loss.item():.3f}, g_u {g_u.item():.3f}, g_s {g_s.item():.5f}, "
                 f"moments {g_v.item():.4f}, discriminative (quick) {score:.3f} "
                 f"({time.monotonic() - t0:.0f} s)")  # fmt: skip
    log.close()
    meta["train_s"] = time.monotonic() - t0
    (run / "config.json").write_text(json.dumps(meta, indent=1))
    return model.eval(), run


def read_run(run: str | Path) -> tuple[GANConfig, dict]:
    return checkpoint.read_run(run, "gan", GANConfig)


def load(run: str | Path, which: str = "best") -> tuple[TimeGAN, GANConfig, dict]:
    """The run's model from its ``best`` checkpoint (the lowest quick discriminative score during the joint phase;
    ``last`` when there is none yet) or its ``last``."""
    if which not in ("best", "last"):
        raise ValueError(f"checkpoint must be best or last, got {which!r}")
    cfg, saved = read_run(run)
    classes = len(saved.get("classes") or [])
    model = TimeGAN(saved["channels"], cfg.hidden, cfg.layers, cell=cfg.cell, classes=classes)
    path = Path(run) / "checkpoints" / f"{which}.safetensors"
    tensors, _ = checkpoint.load(path if path.exists() else path.with_name("last.safetensors"))
    checkpoint.restore(tensors, {}, model)
    return model.eval(), cfg, saved


def sample(run: str | Path, n: int, seed: int = 0, scaled: bool = False, label=None, which: str = "best"):
    """n synthetic sequences (T_i, C), their lengths and, for a conditional run, their labels (else None).

    Each sequence takes the length — and, conditional, the class — of a training sequence drawn at random, so lengths
    follow each class's own distribution; ``label`` keeps to one class. In the data's units unless ``scaled`` (then
    in [0, 1], as the model sees them). ``which``: the best or last checkpoint."""
    model, _, saved = load(run, which)
    gen = torch.Generator().manual_seed(seed)
    classes = saved.get("classes")
    pool = np.arange(len(saved["lengths"]))
    if label is not None:
        if not classes:
            raise ValueError("--label needs a conditional run (trained with --conditional)")
        names = [str(c) for c in classes]
        if str(label) not in names:
            raise ValueError(f"label {label!r} is not one of the run's classes: {', '.join(names[:20])}")
        pool = pool[np.asarray(saved["labels"]) == names.index(str(label))]
    pick = pool[torch.randint(0, len(pool), (n,), generator=gen).numpy()]
    lengths = np.asarray(saved["lengths"])[pick]
    y = np.asarray(saved["labels"])[pick] if classes else None
    out = generate(model, lengths, gen, y)
    if not scaled:
        scale = MinMax(saved["lo"], saved["hi"])
        out = [scale.inverse(s) for s in out]
    return out, lengths, (np.asarray(classes)[y] if classes else None)


def generate(model: TimeGAN, lengths: np.ndarray, gen: torch.Generator, y: np.ndarray | None = None):
    """One synthetic sequence (T_i, C) per length (and class index, conditional) in the model's [0, 1] scale."""
    out: list[np.ndarray] = [np.empty(0)] * len(lengths)
    for index in by_length(lengths, 1024):
        labels = None if y is None else torch.as_tensor(y[index])
        x = model.sample(torch.as_tensor(lengths[index]), labels, gen).numpy()
        for row, i in enumerate(index):
            out[i] = x[row, : int(lengths[i])]
    return out


# ------------------------------------------------------------------------------------------------ evaluation
def _post_hoc(n_in: int, n_out: int, hidden: int, seed: int):
    """The metrics' one-layer GRU, initialised from ``seed`` without touching the global generator: the quick score
    runs inside GAN training, whose noise must not restart from the same seed at every checkpoint."""
    from .layers import GRU

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


def evaluate(run: str | Path, repeats: int = 5, n: int | None = None, out: Path | None = None,
             steps: tuple[int, int] = (2000, 5000), which: str = "best", echo=print) -> dict:  # fmt: skip
    """Discriminative and predictive scores over ``repeats`` runs (mean and std) with fresh synthetic samples per
    repeat; PCA and t-SNE plots with ``out``. The scores are in the units the paper computed them in: the sines'
    own, a file's data min-max scaled to [0, 1] (the paper's loader scales real data first). The predictive score is
    an absolute error, so the units matter: the sines span half the unit interval."""
    cfg, saved = read_run(run)
    real, values, _ = load_series(cfg)
    scaled = cfg.data != "sines"
    if scaled:
        scale = MinMax(saved["lo"], saved["hi"])
        real = [scale(s) for s in real]
    n = n or len(real)
    disc, pred, tstr = [], [], []
    for r in range(repeats):
        fake, _, fake_labels = sample(run, n, seed=1000 + r, scaled=scaled, which=which)
        disc.append(discriminative_score(real[:n], fake, steps[0], seed=r))
        pred.append(predictive_score(real[:n], fake, steps[1], seed=r))
        line = f"repeat {r}: discriminative {disc[-1]:.3f}, predictive {pred[-1]:.4f}"
        if fake_labels is not None:
            tstr.append(class_scores(real, values, saved["classes"], fake, fake_labels, steps[0], seed=r))
            line += f", classes: trained on synthetic {tstr[-1][0]:.3f}, on real {tstr[-1][1]:.3f}"
        echo(line)
    real_pred = [predictive_score(real[:n], real[:n], steps[1], seed=r) for r in range(min(repeats, 2))]
    result = {
        "discriminative": float(np.mean(disc)),
        "discriminative_std": float(np.std(disc)),
        "predictive": float(np.mean(pred)),
        "predictive_std": float(np.std(pred)),
        "predictive_real_on_real": float(np.mean(real_pred)),
        "repeats": repeats,
        "checkpoint": which,
    }
    if tstr:
        on_synthetic, on_real = np.array(tstr).T
        result |= {"class_accuracy_synthetic": float(on_synthetic.mean()), "class_accuracy_synthetic_std":
                   float(on_synthetic.std()), "class_accuracy_real": float(on_real.mean())}  # fmt: skip
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        fake, _, _ = sample(run, min(n, 1000), seed=7, scaled=scaled, which=which)
        plot_embeddings(out / "pca-tsne.png", real[: len(fake)], fake)
        (out / "scores.json").write_text(json.dumps(result, indent=1))
    return result


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
