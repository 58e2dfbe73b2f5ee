"""Modules users build with: drop-in recurrent layers, their diagnostics, and masked pooling."""

from .pooling import POOLINGS, Pool, valid_mask
from .recording import Recording, record
from .recurrent import GRU, LSTM, RNN, Recurrent, layer_class

__all__ = ["GRU", "LSTM", "POOLINGS", "RNN", "Pool", "Recording", "Recurrent", "layer_class", "record", "valid_mask"]
