"""Modules users build with: drop-in recurrent layers, minGRU/minLSTM (trained by a parallel scan), their
diagnostics, the AWD-LSTM dropouts, self-attention blocks, masked pooling, and dynamic quantization that knows the
recurrent layers."""

from .attention import KVCache, Transformer
from .dropout import LockedDropout, embedding_dropout
from .minimal import MinGRU, MinLSTM
from .pooling import POOLINGS, Pool, valid_mask
from .recording import Recording, record
from .recurrent import GRU, LSTM, RNN, Recurrent, layer_class, quantization_mapping, quantize_dynamic

__all__ = [
    "GRU",
    "LSTM",
    "POOLINGS",
    "RNN",
    "KVCache",
    "LockedDropout",
    "MinGRU",
    "MinLSTM",
    "Pool",
    "Recording",
    "Recurrent",
    "Transformer",
    "embedding_dropout",
    "layer_class",
    "quantization_mapping",
    "quantize_dynamic",
    "record",
    "valid_mask",
]
