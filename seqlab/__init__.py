"""seqlab: learn from sequences of any length with exact, fast recurrent networks."""

from .layers import GRU, LSTM, RNN, Recording, layer_class, record

__all__ = ["GRU", "LSTM", "RNN", "Recording", "layer_class", "record"]
__version__ = "0.1.0"
