"""The autograd plumbing the three bptt Functions share around their hand-written forward and backward.

- **New-style Functions** (forward without ctx, ``setup_context``), so torch.func's transforms take them.
- **Second order.** ``backward`` runs the hand-written reverse loop when no graph of the gradient is asked for (grad
  mode is off inside backward): the first-order path is untouched. When one is asked for (``create_graph=True``:
  gradgradcheck, a gradient penalty, torch.func.grad nested in itself) it returns instead the vector-Jacobian
  product of the cell's reference recurrence over the same inputs (``reference.*_over``), recomputed with a graph:
  exact second derivatives, at the per-step speed of autograd.
- **Forward mode** (torch.func.jvp, jacfwd, hessian): the reference recurrence's jvp, recomputed the same way.
- **vmap.** A vmapped batch of inputs (the usual per-sample gradients: ``vmap(grad(f), in_dims=(None, 0))``) is
  folded into the Function's batch rows, one call for all; vmapping the weights (an ensemble) is refused in words.

The input projection: the layers build xw with ``input_projection`` (x W_ih^T + bias, layer-normalised first for
the variant cells) and pass ``projection = (x, w_ih, bias, shape, dtype, norm)``, all of which the projection's own
autograd node keeps anyway when W_ih trains (with W_ih frozen, x is kept here instead of xw, and x is the smaller
of the two unless I > G). A second-order backward recomputes xw from it with a graph, so the first-order path
never keeps xw (T·B·G) alive for the sake of a graph that is rarely asked for. Without it (a direct call), xw
itself is saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


class Spec:
    """How one Function's inputs map onto its reference recurrence: ``spec(*tensor_inputs, *options, bs)``.

    tensors: how many leading inputs are tensors (or None) that may carry gradients; after them come the options
    the reference also takes (RNN's relu), then batch_sizes, slot and projection, always last in that order.
    states: the positions of the initial states among the inputs (folded with xw under vmap); the other tensors
    are weights.
    axes: the batch axis of each output (1 for (T, B, ·), 0 for a final state (B, ·)).
    public: how many outputs are the Function's results; the rest are non-differentiable buffers for backward.
    """

    def __init__(self, reference: Callable, tensors: int, states: Sequence[int], axes: Sequence[int], public: int):
        self.reference, self.tensors, self.states = reference, tensors, tuple(states)
        self.axes, self.public = tuple(axes), public

    def outputs(self, inputs: Sequence) -> tuple[Tensor, ...]:
        """The reference's public outputs for the Function's ``inputs``, with whatever graph they carry."""
        return self.reference(*inputs[:-2])[: self.public]  # without slot and projection


def setup(ctx, spec: Spec, inputs: Sequence, output: Sequence[Tensor], keep: Sequence[Tensor]) -> None:
    """setup_context: save what the hand-written backward reads (``keep``, outputs and inputs) and the reference's
    inputs; xw only when no projection can recompute it."""
    ctx.mark_non_differentiable(*(o for o in output[spec.public :] if o is not None))
    ctx.set_materialize_grads(False)  # else autograd allocates zero gradients for the buffers at every backward
    projection = inputs[-1]
    tensors = list(inputs[: spec.tensors])
    ctx.n_keep = len(keep)
    ctx.xw_saved = projection is None
    ctx.save_for_backward(*keep, *(tensors if ctx.xw_saved else tensors[1:]))
    ctx.save_for_forward(*tensors)
    ctx.spec, ctx.options, ctx.projection = spec, tuple(inputs[spec.tensors :]), projection
    ctx.public = [(o.shape, o.dtype, o.device) for o in output[: spec.public]]


def backward(ctx, grads: Sequence[Tensor | None], reverse) -> tuple:
    """Every Function's backward: the public outputs' gradients, zeros for the unused ones (materialization is off,
    see setup), then the hand-written ``reverse(ctx, *grads)``, or the reference's VJP with a graph when a graph of
    the gradient is asked for (grad mode on inside backward)."""
    grads = tuple(
        torch.zeros(shape, dtype=dtype, device=device) if g is None else g
        for g, (shape, dtype, device) in zip(grads, ctx.public, strict=False)
    )
    if torch.is_grad_enabled():
        return graph_backward(ctx, grads)
    return reverse(ctx, *grads)


def saved(ctx) -> tuple[tuple[Tensor, ...], list]:
    """(what backward kept, the tensor inputs with xw None when it was not kept)."""
    values = ctx.saved_tensors
    keep, tensors = values[: ctx.n_keep], list(values[ctx.n_keep :])
    return keep, (tensors if ctx.xw_saved else [None, *tensors])


def graph_backward(ctx, grads: Sequence[Tensor]) -> tuple:
    """The gradients of every input as the VJP of the reference recurrence, with a graph (create_graph)."""
    spec = ctx.spec
    tensors = saved(ctx)[1]
    if tensors[0] is None:
        tensors[0] = recompute(ctx.projection)
    diff = [i for i, v in enumerate(tensors) if isinstance(v, Tensor) and v.is_floating_point()]

    def function(*primals):
        args = list(tensors)
        for i, v in zip(diff, primals, strict=True):
            args[i] = v
        return spec.outputs([*args, *ctx.options])

    _, vjp = torch.func.vjp(function, *(tensors[i] for i in diff))
    got = dict(zip(diff, vjp(tuple(grads[: spec.public])), strict=True))
    return tuple(got.get(i) for i in range(len(tensors))) + (None,) * len(ctx.options)


def input_projection(x: Tensor, w_ih: Tensor, bias: Tensor | None, dtype, norm=None) -> tuple[Tensor, tuple]:
    """xw = x W_ih^T + bias over all steps, layer-normalised first when ``norm`` = (γ, β, ε) (the variant cells),
    as (T, B, G) in ``dtype``; and the projection a second-order backward recomputes it from (see the module)."""
    T, B, I = x.shape
    x2 = x.reshape(T * B, I)  # not (-1): a batch of 0 rows has no size to infer
    xw = project(x2, w_ih, bias, norm).view(T, B, w_ih.shape[0]).to(dtype)
    return xw, (x2, w_ih, bias, xw.shape, xw.dtype, norm)


def project(x2: Tensor, w_ih: Tensor, bias: Tensor | None, norm) -> Tensor:
    """x2 W_ih^T + bias, or LN(x2 W_ih^T; γ, β) + bias computed as LN(·; γ, β + bias): one pass over (T·B, G) less.
    Under autocast the product runs in bfloat16; the cells keep their states and sums in float32 (product_dtype)."""
    if norm is None:
        return torch.mm(x2, w_ih.t()) if bias is None else torch.addmm(bias, x2, w_ih.t())
    g, b, eps = norm
    shift = b if bias is None else b + bias
    return torch.nn.functional.layer_norm(torch.mm(x2, w_ih.t()), (w_ih.shape[0],), g, shift, eps)


def recompute(projection) -> Tensor:
    """xw again, with a graph, from what input_projection returned beside it."""
    x2, w_ih, bias, shape, dtype, norm = projection
    return project(x2, w_ih, bias, norm).view(shape).to(dtype)


def jvp(ctx, tangents: Sequence) -> tuple:
    """Forward mode: the reference recurrence's jvp at the saved inputs; the buffers get no tangent."""
    spec = ctx.spec
    primals = list(ctx.saved_tensors)
    diff = [i for i, (p, t) in enumerate(zip(primals, tangents, strict=False)) if p is not None and t is not None]

    def function(*values):
        args = list(primals)
        for i, v in zip(diff, values, strict=True):
            args[i] = v
        return spec.outputs([*args, *ctx.options])

    _, out = torch.func.jvp(function, tuple(primals[i] for i in diff), tuple(tangents[i] for i in diff))
    return (*out, *(None,) * (len(spec.axes) - spec.public))


def vmap(function, info, in_dims: Sequence, args: Sequence):
    """Fold a vmapped batch of N into the rows: rows b·N + n, so the rows active at a step stay a prefix."""
    spec: Spec = function.spec
    weights = [i for i in range(1, spec.tensors) if i not in spec.states]
    if any(in_dims[i] is not None for i in weights):  # (the projection may be batched: it is dropped below)
        raise RuntimeError(
            f"{function.__name__}: vmap over the weights of a seqlab recurrent layer is not supported (only over "
            "its inputs and states, as for per-sample gradients); use backend='reference', which vmap runs op by op"
        )
    N = info.batch_size
    xw = args[0].movedim(in_dims[0], 0) if in_dims[0] is not None else args[0].expand(N, *args[0].shape)
    T, B, G = xw.shape[1:]
    folded = [xw.movedim(0, 2).reshape(T, B * N, G), *args[1 : spec.tensors]]  # (T, B, N, G): rows b·N + n
    for i in spec.states:  # sizes spelled out: an empty batch has none to infer
        s = args[i].movedim(in_dims[i], 1) if in_dims[i] is not None else args[i].unsqueeze(1).expand(B, N, -1)
        folded[i] = s.reshape(B * N, s.shape[-1])
    *options, bs, _, _ = args[spec.tensors :]
    bs = None if bs is None else [int(b) * N for b in bs]
    # No recording under vmap; the projection's tensors belong to the vmapped level, so xw is kept instead.
    outputs = function.apply(*folded, *options, bs, None, None)
    return tuple(o.unflatten(a, (B, N)) for o, a in zip(outputs, spec.axes, strict=True)), tuple(
        a + 1 for a in spec.axes
    )
