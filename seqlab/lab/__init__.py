"""The memory lab: the adding problem and the copy task across models (task.py), vanishing and exploding gradients
measured (gradients.py), and the ``seqlab lab`` command (cli.py)."""

from .gradients import run_gradients
from .task import LabConfig, MemoryTask, run_lab

__all__ = ["LabConfig", "MemoryTask", "run_gradients", "run_lab"]
