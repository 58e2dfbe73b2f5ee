"""The training loop's budget: --minutes buys the minutes it names."""

import time

import torch

from seqlab.train import Task, TrainConfig, train


class Slow(Task):
    """Steps that get faster after a slow start (as memory is allocated), and evaluations that take a while."""

    def __init__(self):
        torch.manual_seed(0)
        self.model, self.tokens_per_step, self.steps = torch.nn.Linear(2, 1), 1, 0

    def batch(self, step):
        return torch.ones(4, 2)

    def loss(self, x):
        self.steps += 1
        time.sleep(0.05 if self.steps <= 10 else 0.01)  # the first steps are 5x slower, as a warm-up is
        return (self.model(x) ** 2).mean()

    def evaluate(self):
        time.sleep(0.2)
        return {"val_loss": 1.0}


def test_a_minutes_budget_is_spent_evaluations_included(tmp_path):
    minutes = 0.1  # 6 s
    t0 = time.monotonic()
    result = train(Slow(), TrainConfig(minutes=minutes, eval_every=50, warmup=5), tmp_path, progress=False,
                   echo=lambda s: None)  # fmt: skip
    spent = time.monotonic() - t0
    assert result["stopped"] == "minutes"
    assert 0.9 * 60 * minutes <= spent <= 1.5 * 60 * minutes, spent  # the final evaluation may run a little past


def test_a_resumed_budget_trains_on(tmp_path):
    """A run whose first session used its minutes continues for the new session's minutes."""
    quiet = {"progress": False, "echo": lambda s: None}
    first = train(Slow(), TrainConfig(minutes=0.04, eval_every=20, warmup=5), tmp_path, **quiet)
    second = train(Slow(), TrainConfig(minutes=0.04, eval_every=20, warmup=5), tmp_path, resume=True, **quiet)
    assert first["stopped"] == second["stopped"] == "minutes" and second["step"] > first["step"]
