"""Sequence layers: LSTMCell, LSTM over it, and MultiheadAttention, as torch's (same parameter names and
initialisation).

In: sizes. Out: `LSTMCell(x, (h, c)) -> (h, c)` for one step and `LSTM(x, (h0, c0)) -> (output, (h_n, c_n))`
over a sequence (dim 0, or dim 1 with batch_first). The loop over time is Python: each step adds its ops
to one lazy graph, which is scheduled and fused as a whole when the output is realized.
"""

from __future__ import annotations

import math

from minigrad.nn import Linear  # (defined before nn/__init__.py imports this module)
from minigrad.tensor import Tensor


class LSTMCell:
    """One step: gates = x W_ih^T + b_ih + h W_hh^T + b_hh, split into input, forget, cell and output gates
    (in that order, as torch); c' = f c + i g, h' = o tanh(c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        self.hidden_size = hidden_size
        bound = 1 / math.sqrt(hidden_size)
        uniform = lambda *shape: Tensor.uniform(*shape, low=-bound, high=bound, requires_grad=True)  # noqa: E731
        self.weight_ih = uniform(4 * hidden_size, input_size)
        self.weight_hh = uniform(4 * hidden_size, hidden_size)
        self.bias_ih = uniform(4 * hidden_size) if bias else None
        self.bias_hh = uniform(4 * hidden_size) if bias else None

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            zeros = Tensor.zeros(*x.shape[:-1], self.hidden_size, device=x.device, dtype=x.dtype)
            state = (zeros, zeros)
        return _lstm_step(x, state, (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))


WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _lstm_step(x: Tensor, state: tuple[Tensor, Tensor], weights: tuple) -> tuple[Tensor, Tensor]:
    """One LSTM step with the weights (weight_ih, weight_hh, bias_ih, bias_hh)."""
    (h, c), (weight_ih, weight_hh, bias_ih, bias_hh) = state, weights
    gates = x.linear(weight_ih.T, bias_ih) + h.linear(weight_hh.T, bias_hh)
    i, f, g, o = gates.chunk(4, -1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


class LSTM:
    """Stacked LSTM layers over a sequence; the parameters of layer k are weight_ih_l{k}, weight_hh_l{k},
    bias_ih_l{k}, bias_hh_l{k}, as torch's (so that state dicts interchange)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
    ):
        self.hidden_size, self.num_layers, self.batch_first = hidden_size, num_layers, batch_first
        for k in range(num_layers):
            cell = LSTMCell(input_size if k == 0 else hidden_size, hidden_size, bias)
            for name in WEIGHTS:
                setattr(self, f"{name}_l{k}", getattr(cell, name))

    def __call__(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x = x.transpose(0, 1) if self.batch_first else x
        if state is None:
            zeros = Tensor.zeros(
                self.num_layers, x.shape[1], self.hidden_size, device=x.device, dtype=x.dtype
            )
            state = (zeros, zeros)
        final_h, final_c = [], []
        for k in range(self.num_layers):
            weights = tuple(getattr(self, f"{name}_l{k}") for name in WEIGHTS)
            h, c, outputs = state[0][k], state[1][k], []
            for t in range(x.shape[0]):
                h, c = _lstm_step(x[t], (h, c), weights)
                outputs.append(h)
            x = Tensor.stack(outputs)
            final_h.append(h)
            final_c.append(c)
        x = x.transpose(0, 1) if self.batch_first else x
        return x, (Tensor.stack(final_h), Tensor.stack(final_c))


class MultiheadAttention:
    """torch's nn.MultiheadAttention (same parameter names): query, key and value projected by the rows of
    in_proj_weight, split into num_heads heads, scaled dot-product attention, out_proj. Returns (output,
    weights averaged over the heads, or None with need_weights=False). attn_mask: bool (True = may attend,
    as scaled_dot_product_attention; torch's bool mask means the opposite) or additive floats."""

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, batch_first: bool = False):
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: {num_heads} heads do not divide embed_dim {embed_dim}")
        self.embed_dim, self.num_heads, self.batch_first = embed_dim, num_heads, batch_first
        bound = math.sqrt(6 / (embed_dim + 3 * embed_dim))  # torch's xavier_uniform_ of (3E, E)
        self.in_proj_weight = Tensor.uniform(
            3 * embed_dim, embed_dim, low=-bound, high=bound, requires_grad=True
        )
        self.in_proj_bias = Tensor.zeros(3 * embed_dim, requires_grad=True) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias)
        if bias:
            self.out_proj.bias = Tensor.zeros(embed_dim, requires_grad=True)

    def __call__(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attn_mask: Tensor | None = None,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        if not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        e, heads = self.embed_dim, self.num_heads
        weights = self.in_proj_weight.chunk(3, 0)
        biases = self.in_proj_bias.chunk(3, 0) if self.in_proj_bias is not None else (None,) * 3
        q, k, v = (
            x.linear(w.T, b).reshape(x.shape[0], x.shape[1], heads, e // heads).transpose(1, 2)
            for x, w, b in zip((query, key, value), weights, biases)
        )
        attention = q._attention_weights(k, attn_mask, is_causal=False)  # scaled_dot_product_attention's
        out = attention.matmul(v).transpose(1, 2).reshape(query.shape[0], query.shape[1], e)
        out = self.out_proj(out)
        out = out if self.batch_first else out.transpose(0, 1)
        return out, (attention.mean(1) if need_weights else None)
