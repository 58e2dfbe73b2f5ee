"""Modules users build with: drop-in recurrent layers, their diagnostics, self-attention blocks, masked pooling."""

from .attention import KVCache, Transformer
from .pooling import POOLINGS, Pool, valid_mask
from .recording import Recording, record
from .recurrent import GRU, LSTM, RNN, Recurrent, layer_class

__all__ = [
    "GRU",
    "LSTM",
    "POOLINGS",
    "RNN",
    "KVCache",
    "Pool",
    "Recording",
    "Recurrent",
    "Transformer",
    "layer_class",
    "record",
    "valid_mask",
]
