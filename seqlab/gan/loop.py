"""TimeGAN's own training loop: three phases with five networks and four optimizers, which seqlab.train's one-model,
one-loss loop does not fit.

    1. autoencoder  embedder + recovery on 10·sqrt(MSE) reconstruction         ``cfg.steps`` steps
    2. supervisor   next-step latents of real data                             ``cfg.steps`` steps
    3. joint        two generator (+ embedder) steps per discriminator step    ``cfg.steps`` steps; the
                    discriminator steps only while its loss exceeds 0.15 (the paper's rule)

Writes into the run: metrics.jsonl (a record every 100 steps of each phase), checkpoints/last.safetensors after
each phase and every ``eval_every`` joint steps, and checkpoints/best.safetensors at the lowest quick
discriminative score. Every checkpoint's weights are checked finite first, as seqlab.train does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .. import checkpoint
from ..data.sequences import by_length, pad
from ..models.timegan import TimeGAN, masked_mse, moment_loss
from ..train import TrainingError, autocast
from .metrics import discriminative_score

QUICK = 1000  # sequences a side and training steps of the quick discriminative score taken during training
D_REST = 0.15  # the paper's rule: a discriminator whose loss is already below this rests


class Loop:
    """The state of one TimeGAN training: data (scaled to [0, 1]), the model, its optimizers, the metrics log."""

    def __init__(self, model: TimeGAN, data: list[np.ndarray], y: np.ndarray | None, cfg, run: Path, echo=print):
        self.m, self.data, self.y, self.cfg, self.run, self.echo = model, data, y, cfg, run, echo
        self.lengths = np.array([len(s) for s in data])
        self.rng = np.random.default_rng(cfg.seed)
        adam = lambda *nets: torch.optim.Adam([p for n in nets for p in n.parameters()], lr=cfg.lr)  # noqa: E731
        m = model
        self.opt_e, self.opt_s = adam(m.embedder, m.recovery), adam(m.supervisor)
        self.opt_g, self.opt_d = adam(m.generator, m.supervisor), adam(m.discriminator)
        self.t0 = time.monotonic()

    # -------------------------------------------------------------------------------------------- pieces
    def batch(self):
        """cfg.batch sequences drawn with replacement: x (B, T, C), lengths, mask (B, T, 1), classes or None."""
        idx = self.rng.integers(0, len(self.data), self.cfg.batch)
        x, lengths = pad([self.data[i] for i in idx])
        y = torch.as_tensor(self.y[idx]) if self.y is not None else None
        return x, lengths, (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[:, :, None], y

    def record(self, **values) -> None:
        with open(self.run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(values) + "\n")

    def save(self, phase: str, step: int, name: str = "last", **info) -> None:
        if checkpoint.not_finite(dict(self.m.named_parameters())):
            raise TrainingError(
                f"the {phase} phase's weights are not finite at step {step}; {self.run}/checkpoints keeps the last "
                "good state; try a lower --lr"
            )
        tensors = {f"model.{k}": v for k, v in self.m.state_dict().items()}
        meta = {"phase": phase, "step": step, **info}
        checkpoint.save(self.run / "checkpoints" / f"{name}.safetensors", tensors, meta)

    def supervised(self, h: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The next-step latent loss: S(h)_t against h_{t+1} over valid pairs."""
        return masked_mse(self.m.supervisor(h, lengths)[:, :-1], h[:, 1:], mask[:, 1:])

    def reconstruction(self, h: torch.Tensor, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor):
        """The autoencoder's loss, 10·sqrt(MSE) of recovery(h) against x, as the paper weighs it."""
        return 10 * masked_mse(self.m.recovery(h, lengths), x, mask).sqrt()

    def discriminate(self, *latents: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor, y) -> list:
        """The discriminator's logits on valid steps for each batch of latents, in one pass over them all."""
        k = len(latents)
        logits = self.m.discriminate(torch.cat(latents), lengths.repeat(k), None if y is None else y.repeat(k))
        return [part[mask[:, :, 0].bool()] for part in logits.chunk(k)]

    # -------------------------------------------------------------------------------------------- phases 1 and 2
    def pretrain(self, phase: str, optimizer, loss_of: Callable) -> float:
        """``cfg.steps`` steps of one optimizer on one loss; returns the last loss."""
        for step in range(self.cfg.steps):
            x, lengths, mask, _ = self.batch()
            with autocast(self.cfg.precision):
                loss = loss_of(x, lengths, mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 100 == 0 or step == self.cfg.steps - 1:
                self.record(phase=phase, step=step, loss=loss.item())
        self.save(phase, self.cfg.steps)
        return loss.item()

    def autoencoder(self) -> None:
        def loss(x, lengths, mask):
            return self.reconstruction(self.m.embedder(x, lengths), x, lengths, mask)

        last = self.pretrain("autoencoder", self.opt_e, loss)
        self.echo(f"autoencoder: reconstruction 10·sqrt(MSE) {last:.4f} ({time.monotonic() - self.t0:.0f} s)")

    def supervisor(self) -> None:
        def loss(x, lengths, mask):  # the embedder's latents of real data, fixed: only the supervisor learns here
            return self.supervised(self.m.embedder(x, lengths).detach(), lengths, mask)

        last = self.pretrain("supervisor", self.opt_s, loss)
        self.echo(f"supervisor: next-step latent MSE {last:.5f} ({time.monotonic() - self.t0:.0f} s)")

    # -------------------------------------------------------------------------------------------- phase 3
    def generator_step(self) -> dict[str, torch.Tensor]:
        """One step of the generator (and supervisor), then one of the embedder and recovery."""
        m, cfg, bce = self.m, self.cfg, F.binary_cross_entropy_with_logits
        x, lengths, mask, y = self.batch()
        with autocast(cfg.precision):
            e_hat, h_hat = m.generate(m.noise(x.shape[0], x.shape[1]), lengths, y)
            x_hat = m.recovery(h_hat, lengths).float()
            h = m.embedder(x, lengths)
            y_fake, y_fake_e = self.discriminate(h_hat, e_hat, lengths=lengths, mask=mask, y=y)
            g_u = bce(y_fake, torch.ones_like(y_fake))
            g_u_e = bce(y_fake_e, torch.ones_like(y_fake_e))
            g_s = self.supervised(h, lengths, mask)
            g_v = moment_loss(x_hat, x, mask)
            g_loss = g_u + cfg.gamma * g_u_e + 100 * g_s.clamp_min(1e-12).sqrt() + 100 * g_v
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        with autocast(cfg.precision):
            h = m.embedder(x, lengths)
            e_loss = self.reconstruction(h, x, lengths, mask) + 0.1 * self.supervised(h, lengths, mask)
        self.opt_e.zero_grad()
        e_loss.backward()
        self.opt_e.step()
        return {"g_u": g_u, "g_s": g_s, "g_v": g_v, "e_loss": e_loss}

    def discriminator_step(self) -> torch.Tensor:
        m, bce = self.m, F.binary_cross_entropy_with_logits
        x, lengths, mask, y = self.batch()
        with torch.no_grad(), autocast(self.cfg.precision):
            e_hat, h_hat = m.generate(m.noise(x.shape[0], x.shape[1]), lengths, y)
            h = m.embedder(x, lengths)
        with autocast(self.cfg.precision):
            y_real, y_fake, y_fake_e = self.discriminate(h, h_hat, e_hat, lengths=lengths, mask=mask, y=y)
            d_loss = (bce(y_real, torch.ones_like(y_real)) + bce(y_fake, torch.zeros_like(y_fake))
                      + self.cfg.gamma * bce(y_fake_e, torch.zeros_like(y_fake_e)))  # fmt: skip
        if d_loss.item() > D_REST:
            self.opt_d.zero_grad()
            d_loss.backward()
            self.opt_d.step()
        return d_loss

    def quick_score(self, step: int) -> float:
        """The paper's post-hoc discriminator, 1,000 steps on up to 1,000 sequences a side, to follow progress
        (`seqlab gan eval` computes the full one)."""
        some = slice(0, QUICK)
        fake = generate(self.m, self.lengths[some], torch.Generator().manual_seed(step),
                        None if self.y is None else self.y[some])  # fmt: skip
        return discriminative_score(self.data[some], fake, QUICK)

    def joint(self) -> None:
        cfg, best = self.cfg, float("inf")
        for step in range(cfg.steps):
            for _ in range(2):  # two generator (and embedder) steps per discriminator step, as the paper
                g = self.generator_step()
            d_loss = self.discriminator_step()
            if step % 100 == 0 or step == cfg.steps - 1:
                self.record(phase="joint", step=step, d_loss=d_loss.item(), **{k: v.item() for k, v in g.items()})
            if (step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1:
                self.save("joint", step + 1)
                score = self.quick_score(step)
                self.record(phase="joint", step=step + 1, discriminative_quick=score)
                if score < best:  # GAN training oscillates: keep the checkpoint the quick score liked best
                    best = score
                    self.save("joint", step + 1, "best", discriminative_quick=score)
                self.echo(f"joint step {step + 1}: d {d_loss.item():.3f}, g_u {g['g_u'].item():.3f}, g_s "
                          f"{g['g_s'].item():.5f}, moments {g['g_v'].item():.4f}, discriminative (quick) {score:.3f} "
                          f"({time.monotonic() - self.t0:.0f} s)")  # fmt: skip

    def __call__(self) -> float:
        """All three phases; returns the training time in seconds."""
        self.autoencoder()
        self.supervisor()
        self.joint()
        return time.monotonic() - self.t0


def generate(model: TimeGAN, lengths: np.ndarray, gen: torch.Generator, y: np.ndarray | None = None):
    """One synthetic sequence (T_i, C) per length (and class index, conditional) in the model's [0, 1] scale."""
    out: list[np.ndarray] = [np.empty(0)] * len(lengths)
    for index in by_length(lengths, 1024):
        labels = None if y is None else torch.as_tensor(y[index])
        x = model.sample(torch.as_tensor(lengths[index]), labels, gen).numpy()
        for row, i in enumerate(index):
            out[i] = x[row, : int(lengths[i])]
    return out
