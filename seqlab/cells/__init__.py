"""The recurrent math: one file per cell, each with its equations, forward, and hand-written backward through time."""

from . import reference
from .gru import GRUFunction
from .lstm import LSTMFunction
from .rnn import RNNFunction

__all__ = ["GRUFunction", "LSTMFunction", "RNNFunction", "reference"]
