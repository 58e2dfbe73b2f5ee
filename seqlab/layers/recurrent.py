"""Recurrent layers: drop-in replacements for torch.nn.RNN, LSTM and GRU, exact on variable lengths.

Legend: T time, B batch, I input, H hidden, L layers, D directions (1 or 2), G gate blocks (LSTM 4, GRU 3, RNN 1).

Same constructor, parameter names, shapes and gate order as torch.nn (a state_dict moves both ways), same call
(tensor or PackedSequence, optional hx) and outputs, plus:
- ``lengths=`` (B,) for right-padded batches. Each sequence's output equals its output run alone, final states
  are taken at each sequence's own last step, the reverse direction runs within each sequence's own length, and
  outputs past a length are zero. Nothing routes through PackedSequence, whose CPU path is 5-100x slower.
- ``backend=``: ``fused`` (PyTorch's own kernels: oneDNN's LSTM on CPU, cuDNN on GPU), ``bptt`` (our hand-written
  backward through time, seqlab.cells), ``reference`` (per-step autograd), or ``auto`` (the fastest that supports
  the call; ``effective_backend`` tells which).
- ``forget_bias=`` (LSTM): initial forget-gate bias; the literature uses 1 so gradients reach further back.
- ``weight_drop=p``: DropConnect on every W_hh (Wan et al. 2013; AWD-LSTM, Merity et al. 2018), one mask drawn per
  forward call and used at every step, in training only. Because it masks the weight and not the recurrence, it
  runs on every backend, the fused vendor kernels included (awd-lstm-lm's wrapper had to give up cuDNN's weights).
- ``locked_dropout=True``: the between-layer ``dropout`` draws one mask per sequence and feature, used at every step
  (variational dropout, Gal & Ghahramani 2016), instead of a fresh mask per step.

How lengths run: the batch is sorted longest first once for the whole stack, so the rows still inside their
sequence at step t are a prefix. ``bptt`` shrinks every step to that prefix; ``fused`` calls the vendor kernel
once per stretch of steps with the same active rows, carrying the state (no padding is ever computed).

Under a tracer (torch.jit.trace, torch.onnx.export(..., dynamo=False)) every call runs PyTorch's own op, packed
when lengths are given, as torch.nn does: the graph is exact at other batch sizes, lengths and ``lengths``
(which must then be ≥ 1). Under torch.export (and the dynamo exporter) each layer-direction is one scan over time
(``Recurrent._exported``), which keeps T and lengths dynamic there too; a PackedSequence is refused there in words.

``quantize_dynamic`` quantizes LSTM and GRU as torch's does torch.nn's, into torch's quantized modules.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import _VF, Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells import GRUFunction, LSTMFunction, RNNFunction, compiled, reference
from ..cells._autograd import input_projection
from ..cells._steps import bf16_native
from ..cells.gru_variants import VariantGRUFunction
from ..cells.lstm_variants import EPS, VariantLSTMFunction
from .dropout import locked_dropout
from .minimal import MinGRU, MinimalRecurrent, MinLSTM

BACKENDS = ("auto", "fused", "bptt", "reference")
State = tuple[Tensor, ...]
# w_ih, w_hh, b_ih, b_hh of one layer-direction, and w_hr for a projected LSTM (torch.nn's flat order)
Weights = tuple[Tensor | None, ...]


class ShapeError(RuntimeError, ValueError):
    """A wrong feature size, state shape or sequence length. torch.nn raises RuntimeError for these, with the wording
    our messages start with; seqlab raised ValueError, which its CLI turns into one line. This is both, so code
    written for torch.nn (``except RuntimeError``) and ours (``except ValueError``) catch it."""


def tracing() -> bool:
    """Whether a tracer is recording this call: torch.jit.trace or the TorchScript ONNX exporter. A tracer sees
    tensors and ops only: the bptt backend's autograd.Function would be recorded as its input projection alone,
    with no recurrence (an ONNX graph that runs and is wrong), and its Python loop over time would fix T."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


class Recurrent(nn.Module):
    """Abstract base of RNN, LSTM and GRU: parameters, argument checks, lengths, directions, layers, dispatch.

    A subclass supplies the cell: ``gates`` (G), ``n_states`` (1, or 2 for (h, c)), and the three ways to run one
    layer-direction — ``_bptt``, ``_reference_cell`` and ``_vendor``.
    """

    gates: int
    n_states: int

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        weight_drop: float = 0.0,
        locked_dropout: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):  # torch.nn's types and wording
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: {arg} should be of type int, got: {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name}: {arg} must be greater than zero (a positive integer), got {value!r}")
        # torch.nn's wording. It checks bias and batch_first only, and takes bidirectional="False" as True; we refuse.
        for arg, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(value, bool):
                raise TypeError(f"{name}: {arg} should be of type bool, got: {type(value).__name__}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if backend not in BACKENDS:
            raise ValueError(f"{name}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if isinstance(weight_drop, bool) or not isinstance(weight_drop, (int, float)) or not 0 <= weight_drop < 1:
            raise ValueError(f"{name}: weight_drop must be a probability in [0, 1), got {weight_drop!r}")
        if not isinstance(locked_dropout, bool):
            raise TypeError(f"{name}: locked_dropout should be of type bool, got: {type(locked_dropout).__name__}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout={dropout} acts between layers and num_layers=1, so it does nothing",
                stacklevel=2,
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.proj_size = getattr(self, "proj_size", 0)  # the LSTM's, set before this runs; h has proj_size features
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.backend = backend
        self.weight_drop, self.locked_dropout = float(weight_drop), locked_dropout
        self._recording = None  # (Recording, name prefix) while attached; see attach_recording
        factory = {"device": device, "dtype": dtype}
        D = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else self.output_size * D
            for suffix in ("", "_reverse")[:D]:
                GH = self.gates * hidden_size
                self.register_parameter(
                    f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(GH, layer_input, **factory))
                )
                self.register_parameter(
                    f"weight_hh_l{layer}{suffix}", nn.Parameter(torch.empty(GH, self.output_size, **factory))
                )
                if bias:
                    self.register_parameter(f"bias_ih_l{layer}{suffix}", nn.Parameter(torch.empty(GH, **factory)))
                    self.register_parameter(f"bias_hh_l{layer}{suffix}", nn.Parameter(torch.empty(GH, **factory)))
                if self.proj_size:  # torch.nn's order: after the biases
                    self.register_parameter(
                        f"weight_hr_l{layer}{suffix}", nn.Parameter(torch.empty(self.proj_size, hidden_size, **factory))
                    )
        self.reset_parameters()

    # ----------------------------------------------------------------------------------------------- parameters
    @property
    def output_size(self) -> int:
        """Features of h per direction: proj_size for a projected LSTM, hidden_size otherwise."""
        return self.proj_size or self.hidden_size

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every weight and bias ~ U(-1/√H, 1/√H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        if getattr(self, "layer_norm", False):
            self._reset_layer_norm()

    def _weights(self, layer: int, reverse: bool) -> Weights:
        """Read through the attribute, never self._parameters: a parametrization (weight_norm, spectral_norm,
        register_parametrization) or the legacy hook-based weight_norm replaces the parameter by a computed weight
        there. Each read recomputes it (and steps spectral_norm's power iteration in training), so forward reads
        each weight once, as torch.nn does. Without a parametrization it is a dict lookup (Module.__getattr__)."""
        suffix = f"l{layer}{'_reverse' if reverse else ''}"
        w_ih, w_hh = getattr(self, f"weight_ih_{suffix}"), getattr(self, f"weight_hh_{suffix}")
        biases = (getattr(self, f"bias_ih_{suffix}"), getattr(self, f"bias_hh_{suffix}")) if self.bias else (None, None)
        if self.proj_size:
            return w_ih, w_hh, *biases, getattr(self, f"weight_hr_{suffix}")
        if getattr(self, "layer_norm", False):  # γ, β of each layer norm, in _ln_parts' order
            parts = [part for part, _ in self._ln_parts()]
            ln = tuple(getattr(self, f"ln_{kind}_{part}_{suffix}") for part in parts for kind in ("weight", "bias"))
            return w_ih, w_hh, *biases, ln
        return w_ih, w_hh, *biases

    def _stack_weights(self) -> list[Weights]:
        """Every layer-direction's weights, k = layer·D + direction, read once."""
        D = 2 if self.bidirectional else 1
        return [self._weights(k // D, k % D == 1) for k in range(self.num_layers * D)]

    def _dropped(self, weights: list[Weights]) -> list[Weights]:
        """weight_drop: each W_hh with one DropConnect mask for this call (training only), layer-direction order."""
        if not (self.training and self.weight_drop > 0):
            return weights
        p = self.weight_drop
        return [(w[0], F.dropout(w[1], p, training=True), *w[2:]) for w in weights]

    def _locked_between(self) -> bool:
        """Whether the between-layer dropout of this call is variational (one mask per sequence)."""
        return self.locked_dropout and self.dropout > 0 and self.training and self.num_layers > 1

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """As torch.nn: per layer-direction, [weight_ih, weight_hh(, bias_ih, bias_hh)]."""
        return [[w for w in ws if isinstance(w, Tensor)] for ws in self._stack_weights()]

    def flatten_parameters(self) -> None:
        """Accepted for drop-in compatibility. On CPU it does nothing in torch.nn either; on GPU cuDNN then copies
        the weights into one buffer per call instead of once."""

    # ----------------------------------------------------------------------------------------------- recording
    def attach_recording(self, recording, prefix: str = "") -> None:
        """Send gates and ∂L/∂h_t of every following call to ``recording`` (a seqlab.Recording) until
        ``detach_recording``; the backend is then ``bptt``. ``seqlab.record`` is the usual way in.

        Arguments:
            recording: anything with ``slot(name, restore)``, as seqlab.Recording; this module never imports it.
            prefix: prepended to the keys ``l{k}`` and ``l{k}_reverse`` (``record`` passes the module path).
        """
        if self._recording is not None:
            raise RuntimeError(f"{type(self).__name__}: already recording; detach_recording first")
        self._recording = (recording, prefix)

    def detach_recording(self) -> None:
        """Stop recording (a no-op when not recording)."""
        self._recording = None

    # ----------------------------------------------------------------------------------------------- backends
    def _auto_backend(self, device: torch.device, dtype: torch.dtype, grad: bool) -> str:
        """GRU and RNN have no fused CPU kernel in PyTorch: with gradients our backward is the fast path (1.1-21x
        nn.GRU/nn.RNN in ``seqlab bench``). Without gradients PyTorch's RNN forward ties with ours up to hidden size
        512, and ours is 1.4x faster at 1024, where its per-step GEMM on a prepacked weight pulls ahead (the GRU, with
        its C++ loop, overrides this). On GPU: cuDNN."""
        if device.type != "cpu":
            return "fused"
        return "bptt" if grad or self.hidden_size >= 1024 else "fused"

    def _resolve_backend(self, device: torch.device, dtype: torch.dtype, grad: bool) -> str:
        if self._recording is not None:
            return "bptt"
        if self.backend != "auto":
            return self.backend
        if self._variant():  # no vendor kernel has them
            return "bptt"
        return self._auto_backend(device, dtype, grad)

    def _needs_grad(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))

    @property
    def effective_backend(self) -> str:
        """The backend a call made here and now runs on (``auto`` resolved): it depends on the parameters'
        device and dtype, and on whether autograd records (torch.is_grad_enabled() and trainable parameters)."""
        p = next(self.parameters())  # not weight_hh_l0: reading a parametrized weight can step its state
        grad = torch.is_grad_enabled() and any(q.requires_grad for q in self.parameters())
        return self._resolve_backend(p.device, p.dtype, grad)

    # ----------------------------------------------------------------------------------------------- the cell
    def _input_bias(self, b_ih: Tensor, b_hh: Tensor) -> Tensor:
        """The biases that can be added to x W_ih^T once for all steps."""
        return b_ih + b_hh

    def _bptt(self, xw: Tensor, state: State, weights: Weights, bs, slot, projection) -> tuple[Tensor, State]:
        """The recurrence over the input projection xw (T', B, G) on seqlab.cells' hand-written BPTT."""
        raise NotImplementedError

    def _reference_cell(self):
        raise NotImplementedError

    # ------------------------------------------------------------------------------- the variants (LSTM and GRU)
    def _ln_parts(self) -> tuple[tuple[str, int], ...]:
        """The layer norms of a layer-direction and their sizes: input and recurrent gate pre-activations (G·H)."""
        return (("ih", self.gates * self.hidden_size), ("hh", self.gates * self.hidden_size))

    def _check_variant(self, layer_norm, zoneout, recurrent_dropout, proj_size, backend) -> None:
        """Check and keep layer_norm, zoneout and recurrent_dropout (before the base constructor runs)."""
        name = type(self).__name__
        if not isinstance(layer_norm, bool):
            raise TypeError(f"{name}: layer_norm should be of type bool, got: {type(layer_norm).__name__}")
        for arg, p in (("zoneout", zoneout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise ValueError(f"{name}: {arg} must be a probability in [0, 1), got {p!r}")
        self.layer_norm, self.zoneout, self.recurrent_dropout = layer_norm, float(zoneout), float(recurrent_dropout)
        if not self._variant():
            return
        asked = ", ".join(k for k, v in (("layer_norm", layer_norm), ("zoneout", zoneout),
                                          ("recurrent_dropout", recurrent_dropout)) if v)  # fmt: skip
        if backend == "fused":
            raise ValueError(f"{name}: {asked} run on the bptt backend (or reference); PyTorch's fused kernels "
                             f"(backend='fused') have none of them")  # fmt: skip
        if proj_size:
            raise ValueError(f"{name}: {asked} cannot be combined with proj_size yet")

    def _variant(self) -> bool:
        """Whether the cell is one no vendor kernel has (layer_norm, zoneout or recurrent_dropout)."""
        return bool(getattr(self, "layer_norm", False) or getattr(self, "zoneout", 0) or
                    getattr(self, "recurrent_dropout", 0))  # fmt: skip

    def _register_layer_norm(self, device, dtype) -> None:
        """γ and β (``ln_{weight,bias}_{part}_l*``) of each layer norm of each layer-direction, at 1 and 0."""
        if not getattr(self, "layer_norm", False):
            return
        for layer in range(self.num_layers):
            for suffix in ("", "_reverse")[: 2 if self.bidirectional else 1]:
                for part, size in self._ln_parts():
                    for kind in ("weight", "bias"):
                        empty = torch.empty(size, device=device, dtype=dtype)
                        self.register_parameter(f"ln_{kind}_{part}_l{layer}{suffix}", nn.Parameter(empty))
        self._reset_layer_norm()

    def _reset_layer_norm(self) -> None:
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("ln_"):
                    p.fill_(1.0 if name.startswith("ln_weight") else 0.0)

    def _variant_masks(self, T: int, B: int, like: Tensor) -> tuple[Tensor | None, ...]:
        """Zoneout's masks (T, B, H), one per state (h; and c for the LSTM): Bernoulli(p) per unit and step in
        training, p in eval; then the recurrent dropout mask (B, H), one per sequence, in training only."""
        H, zones, m = self.hidden_size, (None,) * self.n_states, None
        if self.zoneout:
            if self.training:
                zones = tuple(torch.bernoulli(like.new_full((self.n_states, T, B, H), self.zoneout)).detach())
            else:
                zones = (like.new_full((), self.zoneout).expand(T, B, H),) * self.n_states
        if self.recurrent_dropout and self.training:
            keep = 1 - self.recurrent_dropout
            m = torch.bernoulli(like.new_full((B, H), keep)).div_(keep)
        return (*zones, m)

    def _variant_input(self, x: Tensor, weights: Weights, input_bias: Tensor | None, dtype):
        """xw = LN_x(x W_ih^T) + input_bias over all steps with autograd: (T', B, G), and the projection a
        second-order backward recomputes it from (seqlab.cells._autograd)."""
        norm = (weights[-1][0], weights[-1][1], EPS) if self.layer_norm else None
        return input_projection(x, weights[0], input_bias, dtype, norm)

    def _variant_layer(self, backend, x, state, weights, batch_sizes, slot) -> tuple[Tensor, State]:
        raise NotImplementedError

    def _vendor(self, x: Tensor, state: State, weights: list[Tensor], num_layers: int, dropout: float,
                bidirectional: bool, batch_sizes: Tensor | None = None) -> tuple[Tensor, State]:  # fmt: skip
        """PyTorch's own op over time-major x with state tuples of (L·D, B, H); with ``batch_sizes``, x is a
        PackedSequence's data and the state's rows are in its sorted order."""
        raise NotImplementedError

    def _call_vendor(self, op, x, hx, weights, num_layers, dropout, bidirectional, batch_sizes):
        """``op`` (_VF.lstm, gru, rnn_tanh, rnn_relu) in its padded or its packed overload."""
        if batch_sizes is None:
            return op(x, hx, weights, self.bias, num_layers, dropout, self.training, bidirectional, False)
        return op(x, batch_sizes, hx, weights, self.bias, num_layers, dropout, self.training, bidirectional)

    # ----------------------------------------------------------------------------------------------- forward
    def forward(self, input, hx=None, lengths=None):
        """Arguments:
            input: (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I), or a PackedSequence.
            hx: initial state, (L·D, B, H) — for the LSTM a pair (h0, c0) — or None for zeros.
            lengths: (B,) integers in [0, T] for a right-padded batch, or None when every row has length T.
        Returns:
            output (T, B, D·H) (batch_first: (B, T, D·H); PackedSequence in, PackedSequence out), zero past each
            row's length, and the final state at each row's own last step in the layout of hx.
        """
        name = type(self).__name__
        if self._variant() and tracing():
            raise RuntimeError(
                f"{name}: layer_norm, zoneout and recurrent_dropout run on seqlab's bptt cell, which jit.trace, "
                "torch.export and the ONNX exporters cannot record; export a model without them"
            )
        weights = self._dropped(self._stack_weights())
        packed = isinstance(input, PackedSequence)
        if packed and lengths is not None:
            raise ValueError(f"{name}: lengths: a PackedSequence carries its own lengths; pass one or the other")
        # jit.trace and the TorchScript exporter: PyTorch's packed op. torch.export takes lengths in _run's scans
        # (_exported), and a PackedSequence is refused there in words (_traced_packed).
        if tracing() and (packed or (lengths is not None and not torch.compiler.is_exporting())):
            return self._traced_packed(input, hx, lengths, weights)
        if packed:
            x, lengths = pad_packed_sequence(input)  # (T, B, I) in the caller's row order
            batched = True
        else:
            x, batched = self._check_input(input, weights[0][0])
        T, B, _ = x.shape
        state = self._check_hx(hx, x, batched)
        if lengths is not None:
            lengths = self._check_lengths(lengths, T, B, batched)
        out, state = self._run(x, state, lengths, weights)
        if packed:
            order = input.sorted_indices
            out = out if order is None else out.index_select(1, order)
            sorted_lengths = lengths if order is None else lengths[order.cpu()]
            data = pack_padded_sequence(out, sorted_lengths, enforce_sorted=True).data
            out = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        elif not batched:
            out, state = out.squeeze(1), tuple(s.squeeze(1) for s in state)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (state if self.n_states == 2 else state[0])

    def _traced_packed(self, input, hx, lengths, weights: list[Weights]):
        """forward with lengths or a PackedSequence under torch.jit.trace or the TorchScript ONNX exporter: PyTorch's
        packed op, called as torch.nn calls it. Our own path reads the lengths' values in Python (the sort, the
        stretches of equal active rows), which a trace would fix at the traced ones; both tracers know the packed
        op (the exporter turns pack, op and pad into one ONNX recurrent op with sequence_lens), so the graph stays
        exact at another batch size, length and lengths. As in torch.nn's packed path, lengths must be ≥ 1."""
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        if torch.compiler.is_exporting() and packed:
            raise RuntimeError(
                f"{name}: a PackedSequence cannot be exported by torch.export or torch.onnx.export(..., dynamo=True) "
                "(PyTorch's packed op does not export there; torch.nn's packed LSTM fails too): pass the padded "
                "batch and lengths= instead, which export exactly, or use torch.onnx.export(..., dynamo=False)"
            )
        if packed:
            seq = input
            x, _ = self._check_input(seq.data, weights[0][0])  # (N, I) reads as one unbatched sequence: dtype, I
            # A shape, not a value, when the rows were sorted; else the first batch size, as torch.nn reads it.
            B = seq.batch_sizes[0] if seq.unsorted_indices is None else seq.unsorted_indices.shape[0]
        else:
            x, batched = self._check_input(input, weights[0][0])
            T, B, _ = x.shape
            seq = pack_padded_sequence(x, self._check_lengths(lengths, T, B, batched), enforce_sorted=False)
        state = self._check_hx(hx, x, True, B)
        if hx is not None and seq.sorted_indices is not None:  # torch.nn's permute_hidden: rows longest first
            state = tuple(s.index_select(1, seq.sorted_indices) for s in state)
        flat = [w for ws in weights for w in ws if w is not None]
        data, state = self._vendor(
            seq.data, state, flat, self.num_layers, self.dropout, self.bidirectional, seq.batch_sizes
        )  # each row's final state is at its own last step: the packed op stops each row there
        if seq.unsorted_indices is not None:
            state = tuple(s.index_select(1, seq.unsorted_indices) for s in state)
        out = PackedSequence(data, seq.batch_sizes, seq.sorted_indices, seq.unsorted_indices)
        if not packed:
            out = pad_packed_sequence(out, total_length=T)[0]  # zeros past each length, as eager
            out = out.transpose(0, 1) if self.batch_first else out
        return out, (state if self.n_states == 2 else state[0])

    # torch.nn.RNN says "got 4D tensor instead", LSTM and GRU "got 4D instead"; each of ours repeats its own.
    _dim_noun = ""

    def _check_input(self, input, w: Tensor) -> tuple[Tensor, bool]:
        """Each message starts with torch.nn's wording for the same mistake and raises the same type (ShapeError
        is a RuntimeError), then says it our way. ``w`` is weight_ih_l0, already read."""
        name = type(self).__name__
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if not isinstance(input, Tensor):
            raise ValueError(f"{name}: input must be a tensor or a PackedSequence, got {type(input).__name__}")
        shape = tuple(input.shape)
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{name}: Expected input to be 2D or 3D, got {input.dim()}D{self._dim_noun} instead; "
                f"input must be 3-D {layout} or unbatched 2-D (T, input_size), got shape {shape}"
            )
        if not input.is_floating_point():
            raise ValueError(f"{name}: input must be a floating-point tensor, got {input.dtype}")
        if input.shape[-1] != self.input_size:
            raise ShapeError(
                f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {input.shape[-1]}; input must have input_size={self.input_size} features in its last "
                f"dimension, got shape {shape}"
            )
        if input.dtype != w.dtype and torch.is_autocast_enabled(input.device.type) and w.dtype == torch.float32:
            input = input.float()  # a reduced-precision input under autocast (another autocast op's output)
        if input.dtype != w.dtype:  # torch.nn's wording
            raise ValueError(
                f"{name}: RNN input dtype ({input.dtype}) does not match weight dtype ({w.dtype}). Convert input: "
                f"input.to({w.dtype}), or convert model: model.to({input.dtype})"
            )
        if input.device != w.device:
            raise ValueError(f"{name}: input is on {input.device} but the parameters are on {w.device}")
        batched = input.dim() == 3
        x = input if not batched or not self.batch_first else input.transpose(0, 1)
        x = x if batched else x.unsqueeze(1)
        if x.shape[0] == 0:
            raise ShapeError(
                f"{name}: Expected sequence length to be larger than 0 in RNN; input has no time steps (shape {shape})"
            )
        return x, batched

    def _check_hx(self, hx, x: Tensor, batched: bool, B: int | Tensor | None = None) -> State:
        """``B``: the batch size when x lacks it (a traced PackedSequence's; a tensor when read from batch_sizes,
        so the zero state follows it in the trace)."""
        name = type(self).__name__
        LD = self.num_layers * (2 if self.bidirectional else 1)
        B = x.shape[1] if B is None else B
        sizes = (self.output_size, self.hidden_size)[: self.n_states]  # h, and the LSTM's c
        if hx is None:  # one zero tensor per size: h0 and c0 share it unless projected
            zeros = {size: x.new_zeros(LD, B, size) for size in set(sizes)}
            return tuple(zeros[size] for size in sizes)
        if isinstance(B, Tensor):  # traced: a given hx is checked once, when traced, as torch.nn does
            B = int(B)
        wants = [(LD, B, size) if batched else (LD, size) for size in sizes]
        want = wants[0]
        lstm = self.n_states == 2
        parts = hx if lstm else (hx,)
        if lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ValueError(f"{name}: hx must be a pair (h0, c0) of shape {want}")
        for label, h in zip(("hx", "cx") if lstm else ("hx",), parts, strict=True):
            if not isinstance(h, Tensor):
                raise ValueError(f"{name}: {label} must be a tensor of shape {want}, got {type(h).__name__}")
        dims = [h.dim() for h in parts]
        if any(d != len(want) for d in dims):  # torch.nn's wording first
            kind = "batched 3-D" if batched else "unbatched 2-D"
            got = f"({', '.join(f'{d}-D' for d in dims)}) tensors" if lstm else f"{dims[0]}-D tensor"
            raise ShapeError(
                f"{name}: For {kind} input, {'hx and cx' if lstm else 'hx'} should also be {len(want)}-D but got "
                f"{got}; hx must have shape {want} (num_layers·directions, batch, hidden)"
            )
        for i, (label, h) in enumerate(zip(("hx", "cx") if lstm else ("hx",), parts, strict=True)):
            want = wants[i]
            if tuple(h.shape) != want:
                # torch.nn compares after adding the batch dimension of an unbatched call, so it prints that.
                full = list(h.shape) if batched else list(h.unsqueeze(1).shape)
                what = f"hidden[{i}]" if lstm else "hidden"
                raise ShapeError(
                    f"{name}: Expected {what} size {(LD, B, sizes[i])}, got {full}; "
                    f"{label} must have shape {want} (num_layers·directions, batch, hidden), got {tuple(h.shape)}"
                )
            if h.dtype != x.dtype or h.device != x.device:
                raise ValueError(f"{name}: {label} is {h.dtype} on {h.device} but input is {x.dtype} on {x.device}")
        return tuple(h if batched else h.unsqueeze(1) for h in parts)

    def _check_lengths(self, lengths, T: int, B: int, batched: bool) -> Tensor:
        name = type(self).__name__
        if not batched:
            raise ValueError(f"{name}: lengths needs a batched input (3-D); an unbatched sequence has one length")
        lengths = lengths if isinstance(lengths, Tensor) else torch.as_tensor(lengths)  # a tracer warns on any
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.shape != (B,):
            raise ValueError(
                f"{name}: lengths must be {B} integers (one per sequence), "
                f"got {lengths.dtype} of shape {tuple(lengths.shape)}"
            )
        lengths = lengths.to("cpu", torch.int64)
        if tracing():  # their values would be read once, when traced; PyTorch's packed op checks them at each call
            return lengths
        lo, hi = (int(lengths.min()), int(lengths.max())) if B else (0, 0)
        if lo < 0 or hi > T:
            raise ValueError(f"{name}: lengths must lie in [0, {T}] (the padded length), got min {lo} max {hi}")
        return lengths

    # ----------------------------------------------------------------------------------------------- the stack
    def _run(self, x: Tensor, state: State, lengths: Tensor | None, weights: list[Weights]) -> tuple[Tensor, State]:
        """x (T, B, I) time-major, state tuple of (L·D, B, H), weights per layer-direction -> output (T, B, D·H),
        final state tuple."""
        if torch.compiler.is_exporting():  # torch.export would unroll PyTorch's op at the traced T
            return self._exported(x, state, lengths, weights)
        T, B, _ = x.shape
        backend = self._resolve_backend(x.device, x.dtype, self._needs_grad(x))
        if lengths is not None and bool((lengths == T).all()):
            lengths = None
        # Under a tracer, PyTorch's op too: exporters know it, and the bptt Function would be opaque to them.
        if lengths is None and (backend == "fused" or tracing()) and not self._locked_between():
            flat = [w for ws in weights for w in ws if w is not None]
            return self._vendor(x, state, flat, self.num_layers, self.dropout, self.bidirectional)

        order = None
        if lengths is not None:
            # Longest first, so the rows inside their sequence at step t are a prefix; stable keeps ties in order.
            lengths, order = torch.sort(lengths, descending=True, stable=True)
            if bool((order == torch.arange(B)).all()):
                order = None
            else:
                order_dev = order.to(x.device)
                x = x.index_select(1, order_dev)
                state = tuple(s.index_select(1, order_dev) for s in state)
            t_max = int(lengths[0]) if B else 0
            if t_max == 0:  # every sequence is empty: zero outputs, final state = initial state
                return x.new_zeros(T, B, self.output_size * (2 if self.bidirectional else 1)), state
            x = x[:t_max]  # steps past the longest sequence are all padding
            counts = torch.bincount(lengths, minlength=t_max + 1)
            batch_sizes = tuple((B - torch.cumsum(counts, 0))[:t_max].tolist())  # rows with length > t
        else:
            batch_sizes = None

        D = 2 if self.bidirectional else 1
        finals: list[list[Tensor]] = [[] for _ in range(self.n_states)]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                k = layer * D + direction
                reverse = direction == 1
                xin = self._reverse(x, lengths) if reverse else x
                slot = self._slot(layer, reverse, lengths, order, T) if backend == "bptt" else None
                y, s = self._layer(backend, xin, tuple(st[k] for st in state), weights[k], lengths, batch_sizes, slot)
                outs.append(self._reverse(y, lengths) if reverse else y)
                for f, si in zip(finals, s, strict=True):
                    f.append(si)
            x = outs[0] if D == 1 else torch.cat(outs, 2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                if self.locked_dropout:  # one mask per row and feature, the same at every step
                    x = locked_dropout(x, self.dropout, batch_first=False)
                else:
                    x = F.dropout(x, self.dropout, training=True)

        final = tuple(torch.stack(f) for f in finals)
        if x.shape[0] < T:
            x = F.pad(x, (0, 0, 0, 0, 0, T - x.shape[0]))
        if order is not None:
            inverse = torch.argsort(order).to(x.device)
            x = x.index_select(1, inverse)
            final = tuple(s.index_select(1, inverse) for s in final)
        return x, final

    def _exported(self, x: Tensor, state: State, lengths: Tensor | None, weights: list[Weights]):
        """The stack under torch.export and the dynamo ONNX exporter: each layer-direction one scan over time
        (cells.reference.scanned), so the graph keeps T, B and lengths dynamic and exact; no dropout (export is of
        an eval model), the reverse direction within each length by a gather."""
        D, cell = 2 if self.bidirectional else 1, self._reference_cell()
        finals: list[list[Tensor]] = [[] for _ in range(self.n_states)]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                k = layer * D + direction
                xin = self._reverse(x, lengths) if direction else x
                y, s = reference.scanned(cell, xin, tuple(st[k] for st in state), weights[k], lengths)
                outs.append(self._reverse(y, lengths) if direction else y)
                for f, si in zip(finals, s, strict=True):
                    f.append(si)
            x = outs[0] if D == 1 else torch.cat(outs, 2)
        return x, tuple(torch.stack(f) for f in finals)

    @staticmethod
    def _reverse(x: Tensor, lengths: Tensor | None) -> Tensor:
        """Reverse each sequence within its own length: position t < len_b takes len_b - 1 - t. Its own inverse."""
        if lengths is None:
            return x.flip(0)
        T = x.shape[0]
        t = torch.arange(T).unsqueeze(1)  # (T, 1)
        idx = torch.where(t < lengths, lengths - 1 - t, t).to(x.device)  # (T, B)
        return x.gather(0, idx.unsqueeze(2).expand_as(x))

    def _layer(self, backend, x, state, weights: Weights, lengths, batch_sizes, slot) -> tuple[Tensor, State]:
        """One layer-direction over x (T', B, I) with rows sorted longest first when lengths are given."""
        w_ih, _, b_ih, b_hh = weights[:4]
        if self._variant():
            return self._variant_layer(backend, x, state, weights, batch_sizes, slot)
        if backend == "reference":
            return reference.run(self._reference_cell(), x, state, weights, lengths)
        if backend == "fused":
            return self._fused_segments(x, state, [w for w in weights if w is not None], batch_sizes)
        bias = None if b_ih is None else self._input_bias(b_ih, b_hh)
        xw, projection = input_projection(x, w_ih, bias, state[0].dtype)
        return self._bptt(xw, state, weights, batch_sizes, slot, projection)

    def _fused_segments(self, x: Tensor, state: State, weights: list[Tensor], batch_sizes) -> tuple[Tensor, State]:
        """The vendor kernel once per stretch of steps over which the active rows stay the same, carrying the
        state; rows that end a stretch keep their state as final. Exact, and no step is computed for padding.
        Without lengths (batch_sizes None): one call over all steps."""
        if batch_sizes is None:
            y, s = self._vendor(x, tuple(c[None] for c in state), weights, 1, 0.0, False)
            return y, tuple(si[0] for si in s)
        Tx, B, _ = x.shape
        pieces, done = [], []
        cur = state
        t0 = 0
        while t0 < Tx and batch_sizes[t0] > 0:
            b = batch_sizes[t0]
            t1 = t0
            while t1 < Tx and batch_sizes[t1] == b:
                t1 += 1
            y, s = self._vendor(x[t0:t1, :b], tuple(c[:b][None] for c in cur), weights, 1, 0.0, False)
            pieces.append(F.pad(y, (0, 0, 0, B - b)) if b < B else y)
            s = tuple(si[0] for si in s)
            b_next = batch_sizes[t1] if t1 < Tx else 0
            done.append(tuple(si[b_next:b] for si in s))  # rows whose last step was t1 - 1
            cur = tuple(si[:b_next] for si in s)
            t0 = t1
        empty_rows = tuple(s[batch_sizes[0] :] for s in state)  # length 0: final = initial
        final = tuple(torch.cat([d[i] for d in reversed(done)] + [empty_rows[i]]) for i in range(len(state)))
        return torch.cat(pieces), final

    def _slot(self, layer: int, reverse: bool, lengths: Tensor | None, order: Tensor | None, T: int):
        """The attached recording's Slot for this layer-direction, or None when not recording."""
        if self._recording is None:
            return None
        recording, prefix = self._recording
        inverse = None if order is None else torch.argsort(order)

        def restore(v: Tensor) -> Tensor:  # (T', B, H) cell order -> (B, T, H) caller order
            if reverse:
                v = self._reverse(v, lengths)
            if v.shape[0] < T:
                v = F.pad(v, (0, 0, 0, 0, 0, T - v.shape[0]))
            if inverse is not None:
                v = v.index_select(1, inverse.to(v.device))
            return v.transpose(0, 1).contiguous()

        return recording.slot(f"{prefix}l{layer}{'_reverse' if reverse else ''}", restore)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        for key, default in (
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("weight_drop", 0.0),
            ("locked_dropout", False),
            ("layer_norm", False),
            ("zoneout", 0.0),
            ("recurrent_dropout", 0.0),
        ):
            if getattr(self, key, default) != default:
                s += f", {key}={getattr(self, key)}"
        return s + f", backend={self.backend!r}"


class LSTM(Recurrent):
    """Drop-in torch.nn.LSTM (see the module docstring); the equations are in seqlab/cells/lstm.py.

    Extra keywords: ``backend``, and ``forget_bias`` — when given, the forget gate's total bias starts at this
    value (bias_ih's f block set to it, bias_hh's to 0). 1.0 is the usual choice (Gers et al. 2000; Jozefowicz et
    al. 2015): the cell starts out keeping its memory, so gradients reach further back.
    ``proj_size`` P > 0 projects h_t = (o_t ⊙ tanh c_t) W_hr^T to P features (Sak et al. 2014), as torch.nn does,
    on every backend (the bptt backward carries it): h and the output have P features per direction, c keeps H.
    The positional order is torch.nn.LSTM's.

    The variants no vendor kernel has (equations in seqlab/cells/lstm_variants.py), on the bptt backend (auto picks
    it) with a hand-written backward, or on reference:
    - ``layer_norm=True``: layer normalisation of the input and recurrent gate pre-activations and of the cell
      state (Ba et al. 2016, haste's LayerNormLSTM); parameters ``ln_{weight,bias}_{ih,hh,c}_l*``.
    - ``zoneout=p``: each unit of h and c keeps its previous value with probability p per step in training, and
      the expectation in eval (Krueger et al. 2017).
    - ``recurrent_dropout=p``: h_{t-1} dropped before W_hh with one mask per sequence, the same at every step
      (Gal & Ghahramani 2016); training only.
    They are not traced or exported, and not combined with proj_size.
    """

    gates, n_states = 4, 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        forget_bias: float | None = None,
        weight_drop: float = 0.0,
        locked_dropout: bool = False,
        layer_norm: bool = False,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
    ) -> None:
        self._check_variant(layer_norm, zoneout, recurrent_dropout, proj_size, backend)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int):
            raise TypeError(f"LSTM: proj_size should be an integer, got: {type(proj_size).__name__}")
        if proj_size < 0:  # torch.nn's wording
            raise ValueError("LSTM: proj_size should be a positive integer or zero to disable projections")
        if isinstance(hidden_size, int) and 0 < hidden_size <= proj_size:  # a bad hidden_size: the base says so
            raise ValueError(f"LSTM: proj_size has to be smaller than hidden_size ({proj_size} >= {hidden_size})")
        self.proj_size = proj_size
        self.forget_bias = forget_bias
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype,
            backend=backend, weight_drop=weight_drop, locked_dropout=locked_dropout,
        )  # fmt: skip
        if forget_bias is not None and not self.bias:
            raise ValueError("LSTM: forget_bias needs bias=True")
        self._register_layer_norm(device, dtype)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if getattr(self, "forget_bias", None) is not None and self.bias:
            H = self.hidden_size
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if name.startswith("bias_ih"):
                        p[H : 2 * H] = self.forget_bias
                    elif name.startswith("bias_hh"):
                        p[H : 2 * H] = 0.0

    def _auto_backend(self, device, dtype, grad) -> str:
        # oneDNN's fused LSTM is the fastest CPU path for float32 and bfloat16, with or without gradients (and with
        # lengths, run per stretch of equal active rows); it has no float64 kernel, and under bfloat16 autocast it
        # needs a CPU with bfloat16 (without, oneDNN has no primitive for it: the bptt cells emulate it).
        if device.type == "cpu" and torch.is_autocast_enabled("cpu") and not bf16_native():
            return "bptt"
        # oneDNN has no projection: PyTorch runs its native per-step code, which our backward beats in training
        # (1.0-2.3x, and 1.4x less memory saved; seqlab bench --proj). Its inference is as fast or faster.
        if device.type == "cpu" and self.proj_size and grad:
            return "bptt"
        if device.type == "cuda" or dtype in (torch.float32, torch.bfloat16):
            return "fused"
        return "bptt"

    def _ln_parts(self):
        return (*super()._ln_parts(), ("c", self.hidden_size))  # and LN_c over the cell state

    def _variant_layer(self, backend, x, state, weights, batch_sizes, slot) -> tuple[Tensor, State]:
        """One layer-direction of the LSTM with layer norm, zoneout or recurrent dropout (cells/lstm_variants.py):
        xw = LN_x(x W_ih^T) + b with autograd over all steps, then the recurrence on bptt or, as the oracle, the
        reference's per-step autograd."""
        _, w_hh, b_ih, b_hh = weights[:4]
        ln = weights[4] if self.layer_norm else (None,) * 6  # γ, β of LN_x, LN_h, LN_c
        xw, projection = self._variant_input(x, weights, None if b_ih is None else b_ih + b_hh, state[0].dtype)
        z_h, z_c, m = self._variant_masks(xw.shape[0], xw.shape[1], xw)
        args = (xw, state[0], state[1], w_hh, *ln[2:], z_h, z_c, m, batch_sizes)  # ln: γ, β of ih, hh, c
        if backend == "reference":
            h, h_n, c_n = reference.variant_lstm_over(*args)
        else:
            h, h_n, c_n, *_ = VariantLSTMFunction.apply(*args, slot, projection)
        return h, (h_n, c_n)

    def _bptt(self, xw, state, weights, bs, slot, projection):
        w_hr = weights[4] if len(weights) > 4 else None
        h, h_n, c_n, _, _ = LSTMFunction.apply(xw, state[0], state[1], weights[1], w_hr, bs, slot, projection)
        return h, (h_n, c_n)

    def _reference_cell(self):
        return reference.lstm_cell

    def _vendor(self, x, state, weights, num_layers, dropout, bidirectional, batch_sizes=None):
        out, h, c = self._call_vendor(_VF.lstm, x, state, weights, num_layers, dropout, bidirectional, batch_sizes)
        return out, (h, c)


class GRU(Recurrent):
    """Drop-in torch.nn.GRU (see the module docstring); the equations are in seqlab/cells/gru.py.

    The positional order is torch.nn.GRU's; ``proj_size`` is refused with torch.nn's error. ``layer_norm``,
    ``zoneout`` (on h) and ``recurrent_dropout`` as for the LSTM (equations in seqlab/cells/gru_variants.py).
    """

    gates, n_states = 3, 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        proj_size: int | None = None,
        weight_drop: float = 0.0,
        locked_dropout: bool = False,
        layer_norm: bool = False,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
    ) -> None:
        if proj_size is not None:  # torch.nn refuses the keyword whatever its value
            raise ValueError("GRU: proj_size argument is only supported for LSTM, not RNN or GRU")
        self._check_variant(layer_norm, zoneout, recurrent_dropout, 0, backend)
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype,
            backend=backend, weight_drop=weight_drop, locked_dropout=locked_dropout,
        )  # fmt: skip
        self._register_layer_norm(device, dtype)

    def _auto_backend(self, device, dtype, grad) -> str:
        # With its C++ time loop (seqlab/cells/loop.cpp) our GRU is faster than nn.GRU without gradients too:
        # 1.2-4.8x in seqlab bench (2026-12-07). The base class's rule holds where the loop does not run: turned
        # off, or a dtype or bfloat16 autocast it does not take (the Python loop would run instead).
        loop = dtype in (torch.float32, torch.float64) and not torch.is_autocast_enabled("cpu") and compiled.enabled()
        if device.type == "cpu" and loop:
            return "bptt"
        return super()._auto_backend(device, dtype, grad)

    def _variant_layer(self, backend, x, state, weights, batch_sizes, slot) -> tuple[Tensor, State]:
        """One layer-direction of the GRU with layer norm, zoneout or recurrent dropout (cells/gru_variants.py):
        xw = LN_x(x W_ih^T) + b_ih (+ b_hr, b_hz without layer norm) with autograd, then the recurrence."""
        _, w_hh, b_ih, b_hh = weights[:4]
        ln = weights[4] if self.layer_norm else (None,) * 4  # γ, β of LN_x, LN_h
        bias = None if b_ih is None else (b_ih if self.layer_norm else self._input_bias(b_ih, b_hh))
        xw, projection = self._variant_input(x, weights, bias, state[0].dtype)
        z_h, m = self._variant_masks(xw.shape[0], xw.shape[1], xw)
        args = (xw, state[0], w_hh, b_hh, *ln[2:], z_h, m, batch_sizes)
        if backend == "reference":
            h, h_n = reference.variant_gru_over(*args)
        else:
            h, h_n, *_ = VariantGRUFunction.apply(*args, slot, projection)
        return h, (h_n,)

    def _input_bias(self, b_ih, b_hh):
        H = self.hidden_size
        return b_ih + torch.cat([b_hh[: 2 * H], b_hh.new_zeros(H)])  # b_hn stays inside r ⊙ (W_hn h + b_hn)

    def _bptt(self, xw, state, weights, bs, slot, projection):
        b_hh = weights[3]
        b_hn = None if b_hh is None else b_hh[2 * self.hidden_size :]
        h, h_n, *_ = GRUFunction.apply(xw, state[0], weights[1], b_hn, bs, slot, projection)
        return h, (h_n,)

    def _reference_cell(self):
        return reference.gru_cell

    def _vendor(self, x, state, weights, num_layers, dropout, bidirectional, batch_sizes=None):
        out, h = self._call_vendor(_VF.gru, x, state[0], weights, num_layers, dropout, bidirectional, batch_sizes)
        return out, (h,)


class RNN(Recurrent):
    """Drop-in torch.nn.RNN (see the module docstring); the equations are in seqlab/cells/rnn.py.

    ``nonlinearity`` is 'tanh' (default) or 'relu', and comes fourth, as in torch.nn.RNN: RNN(2, 3, 1, 'relu').
    ``proj_size`` is refused with torch.nn's error.
    """

    gates, n_states = 1, 1
    _dim_noun = " tensor"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        proj_size: int | None = None,
        weight_drop: float = 0.0,
        locked_dropout: bool = False,
    ) -> None:
        if proj_size is not None:  # torch.nn refuses the keyword whatever its value
            raise ValueError("RNN: proj_size argument is only supported for LSTM, not RNN or GRU")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNN: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'. "
                f"(nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r})"
            )
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype,
            backend=backend, weight_drop=weight_drop, locked_dropout=locked_dropout,
        )  # fmt: skip

    def _bptt(self, xw, state, weights, bs, slot, projection):
        h, h_n = RNNFunction.apply(xw, state[0], weights[1], self.nonlinearity == "relu", bs, slot, projection)
        return h, (h_n,)

    def _reference_cell(self):
        return reference.rnn_relu_cell if self.nonlinearity == "relu" else reference.rnn_tanh_cell

    def _vendor(self, x, state, weights, num_layers, dropout, bidirectional, batch_sizes=None):
        op = _VF.rnn_relu if self.nonlinearity == "relu" else _VF.rnn_tanh
        out, h = self._call_vendor(op, x, state[0], weights, num_layers, dropout, bidirectional, batch_sizes)
        return out, (h,)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


def layer_class(name: str) -> type[Recurrent] | type[MinimalRecurrent]:
    """'rnn' | 'lstm' | 'gru' | 'mingru' | 'minlstm' -> the layer class (for models that take a backbone name)."""
    classes = {"rnn": RNN, "lstm": LSTM, "gru": GRU, "mingru": MinGRU, "minlstm": MinLSTM}
    if name not in classes:
        raise ValueError(f"unknown recurrent cell {name!r}; expected one of {', '.join(classes)}")
    return classes[name]


# ----------------------------------------------------------------------------------------------- quantization
class DynamicQuantized:
    """What ``quantization_mapping`` maps seqlab's LSTM and GRU to: torch's ``convert`` calls ``from_float`` on the
    module to swap (with a qconfig attached). It builds the torch.nn layer with the same weights (read through the
    attribute, so a parametrized weight is taken as computed) and hands it to torch's own dynamic quantization:
    the result is torch.ao.nn.quantized.dynamic.LSTM or GRU, as if the model had been written with torch.nn.

    The quantized module takes (input, hx) or a PackedSequence, not ``lengths=``: pack a padded batch first
    (pack_padded_sequence(x, lengths, enforce_sorted=False)). A seqlab RNN is refused: PyTorch has no dynamically
    quantized vanilla RNN, and leaving it float where it was asked for would hide that.
    """

    @classmethod
    def from_float(cls, mod: Recurrent, use_precomputed_fake_quant: bool = False) -> nn.Module:
        from torch.ao.nn.quantized import dynamic as nnqd

        if not isinstance(mod, (LSTM, GRU)):
            raise ValueError(_no_quantized_rnn(type(mod).__name__))
        if mod._variant():
            raise ValueError("dynamic quantization: an LSTM with layer_norm, zoneout or recurrent_dropout has no "
                             "quantized counterpart in torch; exclude it (exclude=[...])")  # fmt: skip
        float_cls, quantized_cls = (nn.LSTM, nnqd.LSTM) if isinstance(mod, LSTM) else (nn.GRU, nnqd.GRU)
        p = next(mod.parameters())
        extra = {"proj_size": mod.proj_size} if mod.proj_size else {}  # torch's quantized LSTM has no projection
        with warnings.catch_warnings():  # the dropout with one layer warning: the seqlab layer gave it already
            warnings.simplefilter("ignore")
            twin = float_cls(
                mod.input_size, mod.hidden_size, mod.num_layers, mod.bias, mod.batch_first, mod.dropout,
                mod.bidirectional, device=p.device, dtype=p.dtype, **extra,
            )  # fmt: skip
        twin.load_state_dict({name: getattr(mod, name) for name, _ in twin.named_parameters()})
        twin.train(mod.training)
        twin.qconfig = getattr(mod, "qconfig", None)  # None: torch takes its default (int8)
        return quantized_cls.from_float(twin, use_precomputed_fake_quant=use_precomputed_fake_quant)


def _no_quantized_rnn(where: str) -> str:
    return (
        f"{where} is a seqlab RNN, which dynamic quantization cannot convert: PyTorch has no dynamically quantized "
        "vanilla RNN (torch's quantize_dynamic leaves torch.nn.RNN in floating point without a word). Keep it in "
        "floating point explicitly: seqlab.layers.quantize_dynamic(model, exclude=[RNN]) or its module name"
    )


def quantization_mapping() -> dict[type, type]:
    """torch's default dynamic-quantization mapping (torch.nn's Linear, LSTM, GRU and cells) plus seqlab's LSTM and
    GRU (to DynamicQuantized) and RNN (to DynamicQuantized too, which refuses it in words), for torch's
    ``quantize_dynamic(model, qconfig_spec, mapping=quantization_mapping())``; without it torch leaves seqlab's
    layers in floating point silently (its mapping knows them not)."""
    from torch.ao.quantization.quantization_mappings import get_default_dynamic_quant_module_mappings

    return {**get_default_dynamic_quant_module_mappings(), LSTM: DynamicQuantized, GRU: DynamicQuantized,
            RNN: DynamicQuantized}  # fmt: skip


def quantize_dynamic(model: nn.Module, dtype: torch.dtype = torch.qint8, *, exclude=(), inplace: bool = False):
    """torch.ao.quantization.quantize_dynamic with seqlab's layers known: weights of nn.Linear, torch.nn's LSTM,
    GRU and cells (the modules torch's own default quantizes) and seqlab's LSTM and GRU become int8 (or float16)
    and activations are quantized on the fly. A seqlab layer becomes torch's quantized LSTM or GRU, which takes
    (input, hx) or a PackedSequence but not ``lengths=`` (see DynamicQuantized); torch.nn.RNN stays float, as
    with torch's quantize_dynamic.

    Arguments:
        model: the float model (copied unless ``inplace``); it is put in eval mode, as torch's does.
        dtype: torch.qint8 or torch.float16, the weights' type.
        exclude: module names (as in named_modules) and module types whose whole subtree stays in floating point.
            Every seqlab RNN must be among them: it has no quantized counterpart, and is refused otherwise.
        inplace: convert ``model`` itself.
    """
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic
    from torch.ao.quantization.qconfig import default_dynamic_qconfig, float16_dynamic_qconfig
    from torch.nn.utils.parametrize import type_before_parametrizations

    qconfigs = {torch.qint8: default_dynamic_qconfig, torch.float16: float16_dynamic_qconfig}
    if dtype not in qconfigs:
        raise ValueError(f"quantize_dynamic: dtype must be torch.qint8 or torch.float16, got {dtype}")
    exclude = (exclude,) if isinstance(exclude, (str, type)) else tuple(exclude)
    if any(not isinstance(e, (str, type)) for e in exclude):
        raise TypeError(f"quantize_dynamic: exclude takes module names and types, got {exclude!r}")
    modules = list(model.named_modules(remove_duplicate=False))
    missing = [e for e in exclude if isinstance(e, str) and e not in {name for name, _ in modules}]
    if missing:
        raise ValueError(f"quantize_dynamic: exclude names no module of the model: {missing}")
    types = (nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.RNNCell, nn.GRUCell, LSTM, GRU, RNN)
    spec: dict = dict.fromkeys(types, qconfigs[dtype])
    floats = [e for e in exclude if isinstance(e, str)]  # prefixes of the subtrees kept float
    excluded_types = tuple(e for e in exclude if isinstance(e, type))
    for name, mod in modules:  # a parent comes before its children
        kind = type_before_parametrizations(mod)
        if isinstance(mod, excluded_types):
            floats.append(name)
        if any(f == "" or name == f or name.startswith(f + ".") for f in floats):
            spec[name] = None  # a name's qconfig overrides its type's, and each module in the subtree is named
        elif kind is RNN:
            raise ValueError(_no_quantized_rnn(f"quantize_dynamic: {name or 'the model'}"))
    return torch_quantize_dynamic(model, spec, dtype, mapping=quantization_mapping(), inplace=inplace)


__all__: Sequence[str] = (
    "GRU", "LSTM", "RNN", "DynamicQuantized", "Recurrent", "layer_class", "quantization_mapping", "quantize_dynamic",
)  # fmt: skip
