"""einsum: Einstein summation over any subscripts, with '...' and repeated letters (diagonals).

In: a formula such as 'bij,bjk->bik' and the operands (as arguments or one list). Out: one Tensor, the
operands' product broadcast over every letter and summed over the letters the output does not keep. No new
op: each operand's repeated letters become a diagonal (a mask and a sum), then permutes, reshapes, one
elementwise product and one sum.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minigrad.tensor import Tensor


class EinsumOps:
    __slots__ = ()

    @staticmethod
    def einsum(formula: str, *operands) -> "Tensor":
        """torch.einsum: operands as arguments or one list; without '->' the output keeps the letters that
        appear once, in alphabetical order, after the '...' dims."""
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = tuple(operands[0])
        formula = formula.replace(" ", "")
        inputs, _, output = formula.partition("->")
        specs = inputs.split(",")
        if len(specs) != len(operands):
            raise RuntimeError(
                f"einsum: {formula!r} has {len(specs)} operands' subscripts, got {len(operands)} operands"
            )
        unused = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in formula]
        ellipsis_rank = max((t.ndim - len(s) + 3 for s, t in zip(specs, operands) if "..." in s), default=0)
        ellipsis = "".join(unused[:ellipsis_rank])
        specs = [_expand_ellipsis(s, t, ellipsis) for s, t in zip(specs, operands)]
        if "->" in formula:
            output = output.replace("...", ellipsis)
        else:
            letters = "".join(specs)
            output = ellipsis + "".join(
                sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis)
            )
        operands = [_diagonals(t, s) for t, s in zip(operands, specs)]
        specs = ["".join(dict.fromkeys(s)) for s in specs]
        order = output + "".join(sorted({c for s in specs for c in s} - set(output)))
        sizes = {}
        aligned = []
        for t, s in zip(operands, specs):
            for c, n in zip(s, t.shape):
                if sizes.setdefault(c, n) != n and 1 not in (sizes[c], n):
                    raise RuntimeError(f"einsum: subscript {c!r} has sizes {sizes[c]} and {n} in {formula!r}")
                sizes[c] = max(sizes[c], n) if 1 in (sizes[c], n) else n
            t = t.permute(sorted(range(len(s)), key=lambda i: order.index(s[i])))
            present = sorted(s, key=order.index)
            aligned.append(t.reshape([t.shape[present.index(c)] if c in present else 1 for c in order]))
        product = aligned[0]
        for t in aligned[1:]:
            product = product * t
        summed = tuple(range(len(output), len(order)))
        result = product.sum(summed) if summed else product
        return result.expand([sizes.get(c, 1) for c in output]) if output else result


def _expand_ellipsis(spec: str, t: "Tensor", ellipsis: str) -> str:
    if "..." not in spec:
        if len(spec) != t.ndim:
            raise RuntimeError(f"einsum: subscripts {spec!r} for an operand of shape {t.shape}")
        return spec
    rank = t.ndim - len(spec) + 3
    if rank < 0:
        raise RuntimeError(f"einsum: subscripts {spec!r} for an operand of shape {t.shape}")
    return spec.replace("...", ellipsis[len(ellipsis) - rank :])


def _diagonals(t: "Tensor", spec: str) -> "Tensor":
    """Take the diagonal over each letter repeated in spec (the later dim is summed away against a mask)."""
    seen = {}
    axis = 0
    for c in spec:
        if c in seen:
            first, n = seen[c], t.shape[axis]
            if t.shape[first] != n:
                raise RuntimeError(f"einsum: repeated subscript {c!r} over sizes {t.shape[first]} and {n}")
            positions = type(t).arange(n, device=t.device)
            mask_shape = [1] * t.ndim
            mask_shape[first], mask_shape[axis] = n, 1
            eye = positions.reshape(mask_shape) == positions.reshape(
                [n if d == axis else 1 for d in range(t.ndim)]
            )
            t = eye.where(t, 0).sum(axis)
        else:
            seen[c] = axis
            axis += 1
    return t
