"""Modules users build with: drop-in recurrent layers and their diagnostics."""

from .recording import Recording, record
from .recurrent import GRU, LSTM, RNN, Recurrent, layer_class

__all__ = ["GRU", "LSTM", "RNN", "Recording", "Recurrent", "layer_class", "record"]
