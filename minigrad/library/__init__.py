"""The op library: every Tensor method beyond the core, composed of primitive ops, one module per family.

In: Tensors. Out: Tensors. Each module holds one mixin class that `Tensor` (tensor.py) inherits:
math (elementwise math, activations), movement, indexing, reduce (reductions and contractions) and nn
(neural-network functions); shapes holds the shape arithmetic they share. New ops go in their family's
module; a new family is a new module and one more base class of `Tensor`.
"""
