"""Linear algebra as torch.linalg: solve, inv, det, slogdet, cholesky, qr, eigh, eigvalsh.

In: Tensors of shape (..., n, n) (qr: (..., m, n)), batched over the leading dims. Out: Tensors, with
gradients (backward and every transform) from the primitive ops they are made of.

Every algorithm is a loop, unrolled in Python over the matrix size n, of whole-tensor primitive ops: a step
updates all rows (and all matrices of the batch) at once, and selecting a row or a column is a multiply by
a one-hot mask. The masks of step k are data (small buffers), not constants, so every step runs the same
compiled kernels; outside vmap each step is realized before the next is built (one graph n steps deep
would be scheduled and compiled as a whole). Nothing runs on the host, so they run on every device, and their derivatives are the
derivatives of the steps (no hand-written rules, except eigh's, see there). The graphs grow with n
(about n steps of a few ops each; eigh: n rounds per sweep, each a few matmuls): meant for the small and
medium matrices of models, not for n in the thousands.

  LU with partial pivoting (P A = L U; pivot: the largest |entry| of the column, first on ties, as LAPACK)
      solve, inv, det, slogdet
  Cholesky-Banachiewicz, column by column                      cholesky
  Householder reflections (LAPACK's signs: R's diagonal is -sign(a) |column|)   qr (reduced)
  parallel Jacobi rotations (round-robin pairs), sorted ascending eigh

Errors as torch's: a singular matrix in solve or inv, and a matrix that is not positive-definite in
cholesky, raise (the check reads the pivots back, so not inside vmap); det and slogdet of a singular matrix give 0 and
(0, -inf). cholesky and eigh read the lower triangle, as torch's, and their gradient is the symmetric one.
"""

from __future__ import annotations

from collections import namedtuple

from minigrad.dtype import dtypes
from minigrad.function import Function
from minigrad.lazy import Placeholder, toposort
from minigrad.ops import Op
from minigrad.tensor import Tensor

# results as torch.linalg's named tuples (unpack them, or read their fields)
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
QRResult = namedtuple("QRResult", ["Q", "R"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])

JACOBI_SWEEPS = 12  # at most; each sweep squares the off-diagonal's size once it is small (quadratic)


# ---- helpers -----------------------------------------------------------------------------------------


def _square(A: Tensor, name: str) -> int:
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.{name}: A must be batches of square matrices, but they are {A.shape}")
    if not dtypes.is_float(A.dtype):
        raise RuntimeError(f"linalg.{name}: expected a floating-point tensor, got {A.dtype.name}")
    return A.shape[-1]


def _lower_symmetric(A: Tensor) -> Tensor:
    """The symmetric matrix of A's lower triangle (what torch's cholesky and eigh read), whose gradient
    is the symmetric part of what flows back, split evenly between A[i, j] and A[j, i] as torch's."""
    lower = A.tril() + A.tril(-1).transpose(-1, -2)
    symmetric = (A + A.transpose(-1, -2)) * 0.5
    return lower.detach() + (symmetric - symmetric.detach())  # lower's value, symmetric's derivative


def _readable(t: Tensor) -> bool:
    """Can t's data be read now? Not while vmap traces a function with stand-ins for one example, whose
    values do not exist: there the checks that read data back are skipped (a singular matrix then gives
    inf or NaN, as torch's *_ex functions), and eigh runs a fixed number of sweeps."""
    nodes = toposort([t.lazydata], stop=lambda node: node.realized is not None)
    return not any(node.op is Op.BUFFER and isinstance(node.arg, Placeholder) for node in nodes)


def _raise_if(condition: Tensor, message: str) -> None:
    """Raise RuntimeError(message) when any element of `condition` is True (reads it back, when it can)."""
    if condition.numel() and _readable(condition) and bool(condition.any().item()):
        raise RuntimeError(message)


# ---- LU: solve, inv, det, slogdet --------------------------------------------------------------------


def _steps(n: int, like: Tensor) -> list[tuple[Tensor, Tensor]]:
    """For each step k of an algorithm over rows: (e_k, rows > k) as float data, not as constants in the
    kernels, so that every step's kernels are the same program (compiled once, not n times)."""
    steps = []
    for k in range(n):
        e_k, after = [float(i == k) for i in range(n)], [float(i > k) for i in range(n)]
        steps.append(tuple(Tensor(x, device=like.device, dtype=like.dtype).realize() for x in (e_k, after)))
    return steps


def _pick(M: Tensor, e_k: Tensor, axis: int) -> Tensor:
    """Row (axis -2) or column (axis -1) k of each matrix as (..., n): a product with e_k, summed."""
    return (M * (e_k.unsqueeze(-1) if axis == -2 else e_k)).sum(axis)


def _lu(A: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """P A = L U with partial pivoting, unrolled over the columns. Returns (P, L, U, sign of P)."""
    n = A.shape[-1]
    rows = Tensor.arange(n, device=A.device)
    U, L = A, Tensor.zeros(*A.shape, device=A.device, dtype=A.dtype)
    P = Tensor.eye(n, device=A.device, dtype=A.dtype).expand(*A.shape)
    sign = Tensor.ones(*A.shape[:-2], device=A.device, dtype=A.dtype)
    eager = _readable(A)
    for e_k, after in _steps(n, A):
        if eager:  # each step's kernels the same programs, run at once (not one graph n steps deep)
            U, L, P, sign = U.realize(), L.realize(), P.realize(), sign.realize()
        candidates = (after + e_k > 0).where(_pick(U, e_k, -1).abs(), -1.0)  # rows above k are done
        is_p = rows == candidates.argmax(-1).unsqueeze(-1)  # (..., n): the pivot row
        is_k = e_k > 0
        U, L, P = (_swap_rows(M, is_k.unsqueeze(-1), is_p.unsqueeze(-1)) for M in (U, L, P))
        sign = (is_p & is_k).any(-1).where(sign, -sign)
        row = _pick(U, e_k, -2)  # (..., n): row k, now the pivot's
        pivot = (row * e_k).sum(-1, keepdim=True)  # 0 only when the whole column below is 0 (singular)
        pivot = (pivot == 0).where(1.0, pivot)  # then nothing to eliminate, and no 0/0
        factors = after * _pick(U, e_k, -1) / pivot  # (..., n): below the pivot
        U = U - factors.unsqueeze(-1) * row.unsqueeze(-2)
        L = L + factors.unsqueeze(-1) * e_k
    return P, L + Tensor.eye(n, device=A.device, dtype=A.dtype), U, sign


def _swap_rows(M: Tensor, is_k: Tensor, is_p: Tensor) -> Tensor:
    """M with rows k and p exchanged (is_k, is_p: (..., n, 1) masks of them; the same row: unchanged)."""
    row_k, row_p = (M * is_k).sum(-2, keepdim=True), (M * is_p).sum(-2, keepdim=True)
    return is_k.where(row_p, is_p.where(row_k, M))


def _diagonal(M: Tensor) -> Tensor:
    return M.diagonal(0, -2, -1)


def _substitute(L: Tensor, U: Tensor, B: Tensor) -> Tensor:
    """X with L U X = B (L unit lower, U upper triangular; B (..., n, k)): forward substitution, then back
    substitution, a row of the solution per step (the rows not yet solved are 0 and drop out)."""
    steps = _steps(L.shape[-1], L)
    Y = B * 0
    eager = _readable(B) and _readable(L)
    for e_i, _ in steps:
        Y = Y.realize() if eager else Y
        solved = B - L @ Y  # row i: B[i] - sum over j < i of L[i, j] Y[j]
        Y = Y + e_i.unsqueeze(-1) * solved
    X, diagonal = Y * 0, _diagonal(U).unsqueeze(-1)
    for e_i, _ in reversed(steps):
        X = X.realize() if eager else X
        solved = (Y - U @ X) / diagonal  # row i: (Y[i] - sum over j > i of U[i, j] X[j]) / U[i, i]
        X = X + e_i.unsqueeze(-1) * solved
    return X


def solve(A: Tensor, B: Tensor) -> Tensor:
    """X with A X = B, as torch.linalg.solve: B is (..., n, k), or (..., n) for one vector per matrix."""
    n = _square(A, "solve")
    vector = B.ndim == A.ndim - 1 and B.shape[-1] == n
    rhs = B.unsqueeze(-1) if vector else B
    if rhs.shape[-2] != n:
        raise RuntimeError(f"linalg.solve: A {A.shape} and B {B.shape} do not fit: B needs {n} rows")
    batch = _broadcast_batch(A.shape[:-2], rhs.shape[:-2], "solve")
    A = A.expand(*batch, n, n)
    rhs = rhs.expand(*batch, *rhs.shape[-2:]).cast(A.dtype)
    P, L, U, _ = _lu(A)
    _raise_if(_diagonal(U) == 0, "linalg.solve: The solver failed because the input matrix is singular.")
    X = _substitute(L, U, P @ rhs)
    return X.squeeze(-1) if vector else X


def _broadcast_batch(a: tuple, b: tuple, name: str) -> tuple:
    """The batch shape that batch shapes a and b broadcast to."""
    ndim = max(len(a), len(b))
    a, b = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise RuntimeError(f"linalg.{name}: batch shapes {a} and {b} do not broadcast")
    return tuple(max(x, y) for x, y in zip(a, b))


def inv(A: Tensor) -> Tensor:
    """A^-1, as torch.linalg.inv (a singular matrix raises)."""
    n = _square(A, "inv")
    P, L, U, _ = _lu(A)
    message = "linalg.inv: The inversion could not be completed because the input matrix is singular."
    _raise_if(_diagonal(U) == 0, message)
    return _substitute(L, U, P.cast(A.dtype) @ Tensor.eye(n, device=A.device, dtype=A.dtype))


def det(A: Tensor) -> Tensor:
    """The determinant, as torch.linalg.det: the product of U's diagonal times the sign of P."""
    n = _square(A, "det")
    if n == 0:
        return Tensor.ones(*A.shape[:-2], device=A.device, dtype=A.dtype)
    _, _, U, sign = _lu(A)
    product = U[..., 0, 0]
    for i in range(1, n):
        product = product * U[..., i, i]
    return sign * product


def slogdet(A: Tensor) -> tuple[Tensor, Tensor]:
    """(sign, log|det|), as torch.linalg.slogdet: a singular matrix gives (0, -inf)."""
    _square(A, "slogdet")
    _, _, U, sign = _lu(A)
    pivots = _diagonal(U)
    return SlogdetResult(sign * pivots.sign().prod(-1), pivots.abs().log().sum(-1))


# ---- cholesky, qr ------------------------------------------------------------------------------------


def cholesky(A: Tensor, upper: bool = False) -> Tensor:
    """L (lower triangular, positive diagonal) with L L^T = A, as torch.linalg.cholesky (upper=True: L^T);
    reads A's lower triangle; raises when A is not positive-definite."""
    n = _square(A, "cholesky")
    A = _lower_symmetric(A)
    diagonal, eager = [], _readable(A)
    L = Tensor.zeros(*A.shape, device=A.device, dtype=A.dtype)
    for e_j, after in _steps(n, A):
        L = L.realize() if eager else L  # each column's kernels the same programs (see _lu)
        rest = _pick(A, e_j, -1) - (L * _pick(L, e_j, -2).unsqueeze(-2)).sum(-1)  # A[:, j] - L L[j]^T
        d = (rest * e_j).sum(-1, keepdim=True)
        diagonal.append(d)
        root = (d > 0).where(d, 1.0).sqrt()  # a non-positive pivot raises below, NaN-free until then
        column = after * rest / root + e_j * root  # (..., n): L's column j
        L = L + column.unsqueeze(-1) * e_j
    if n:
        failed = Tensor.cat(*diagonal, dim=-1) <= 0
        if failed.numel() and _readable(failed) and bool(failed.any().item()):
            order = int(failed.reshape(-1, n).numpy().any(0).argmax()) + 1
            raise RuntimeError(
                "linalg.cholesky: The factorization could not be completed because the input is not "
                f"positive-definite (the leading minor of order {order} is not positive-definite)."
            )
    return L.transpose(-1, -2) if upper else L


def qr(A: Tensor, mode: str = "reduced") -> tuple[Tensor, Tensor]:
    """(Q, R) with A = Q R, as torch.linalg.qr: Householder reflections with LAPACK's signs, so Q and R
    equal torch's. mode "reduced" (Q: (..., m, k), R: (..., k, n), k = min(m, n)) or "complete"."""
    if A.ndim < 2 or not dtypes.is_float(A.dtype):
        raise RuntimeError(
            f"linalg.qr: A must be batches of float matrices, but it is {A.shape} {A.dtype.name}"
        )
    if mode not in ("reduced", "complete"):
        raise RuntimeError(
            f"qr received unrecognized mode '{mode}' but expected one of 'reduced' or 'complete'"
        )
    m, n = A.shape[-2:]
    k = min(m, n)
    R, Q = A, Tensor.eye(m, device=A.device, dtype=A.dtype).expand(*A.shape[:-2], m, m)
    eager = _readable(A)
    for (e_row, after), (e_column, _) in zip(_steps(m, A), _steps(n, A)):  # the first k = min(m, n)
        R, Q = (R.realize(), Q.realize()) if eager else (R, Q)  # each step the same programs (see _lu)
        x = (after + e_row) * _pick(R, e_column, -1)  # (..., m): column j from row j down
        alpha = (x * e_row).sum(-1, keepdim=True)
        below = ((after * x) ** 2).sum(-1, keepdim=True)
        norm = (alpha * alpha + below).sqrt()
        beta = -(alpha >= 0).where(norm, -norm)  # -sign(alpha) |x|, sign(0) = +1 (LAPACK's dlarfg)
        v = x - beta * e_row  # H = I - 2 v v^T / v^T v maps x to beta e_j
        vv = (v * v).sum(-1, keepdim=True)
        reflect = below > 0  # nothing below the diagonal: no reflection (H = I, as LAPACK)
        scale = reflect.where(2 / reflect.where(vv, 1.0), 0.0)
        R = R - (scale * v).unsqueeze(-1) * (v.unsqueeze(-2) @ R)
        Q = Q - (Q @ v.unsqueeze(-1)) * (scale * v).unsqueeze(-2)
    if mode == "reduced":
        return QRResult(Q[..., :, :k], R[..., :k, :].triu())
    return QRResult(Q, R.triu())


# ---- eigh --------------------------------------------------------------------------------------------


def _jacobi(A: Tensor, sweeps: int) -> tuple[Tensor, Tensor]:
    """Parallel cyclic Jacobi: each sweep visits every pair (p, q) once, in n - 1 (n even) or n (n odd)
    rounds of disjoint pairs (a round-robin tournament), and a round rotates all its pairs at once:
    A <- J^T A J, V <- V J. The round's pairing is data (a permutation matrix), not constants in the
    kernels, so every round runs the same compiled kernels. Returns (eigenvalues unsorted, V)."""
    n = A.shape[-1]
    V = Tensor.eye(n, device=A.device, dtype=A.dtype).expand(*A.shape)
    rounds = [_pairing(pairs, n, A) for pairs in _tournament(n)]
    eager = _readable(A)  # inside vmap: a fixed number of sweeps, each round a kernel boundary
    for _ in range(sweeps):
        if eager:
            off_diagonal = (A * A).sum((-2, -1)) - (_diagonal(A) ** 2).sum(-1)
            if n < 2 or bool((off_diagonal <= 1e-14 * (A * A).sum((-2, -1))).all().item()):
                break  # converged (quadratically: a sweep or two after the rotations get small)
        for partner, first, paired in rounds:
            J = _rotations(A, partner, first, paired)
            # a kernel boundary at each round: the next round reads A at several views, and inlining a
            # chain of rounds into one kernel would repeat each round's work for every view
            A, V = (J.transpose(-1, -2) @ A @ J), V @ J
            A, V = (A.realize(), V.realize()) if eager else (A.clone(), V.clone())
    return _diagonal(A), V


def _tournament(n: int) -> list[list[tuple[int, int]]]:
    """The rounds of a round-robin over n players (circle method; with n odd, one sits out each round)."""
    players = list(range(n + n % 2))  # player n (n odd) is "sits out"
    rounds = []
    for _ in range(len(players) - 1):
        half = len(players) // 2
        pairs = [(players[i], players[-1 - i]) for i in range(half)]
        rounds.append([(min(p, q), max(p, q)) for p, q in pairs if max(p, q) < n])
        players = [players[0], players[-1]] + players[1:-1]
    return rounds


def _pairing(pairs: list[tuple[int, int]], n: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One round as data: the partner permutation matrix (i -> partner of i, itself when it sits out),
    +1 for the first of each pair and -1 for the second, and 1 where the index is paired."""
    partner = [[0.0] * n for _ in range(n)]
    first, paired = [0.0] * n, [0.0] * n
    for i in range(n):
        partner[i][i] = 1.0
    for p, q in pairs:
        partner[p][p] = partner[q][q] = 0.0
        partner[p][q] = partner[q][p] = 1.0
        first[p], first[q], paired[p], paired[q] = 1.0, -1.0, 1.0, 1.0
    return tuple(Tensor(x, device=like.device, dtype=like.dtype).realize() for x in (partner, first, paired))


def _rotations(A: Tensor, partner: Tensor, first: Tensor, paired: Tensor) -> Tensor:
    """J with J^T A J zero at every (p, q) of the round: J[p, p] = J[q, q] = c, J[p, q] = s, J[q, p] = -s,
    the classic rotation (the smaller root t = tan angle); index i carries t for the pair seen from i, so
    t at q is -t at p. Identity rows where an index sits out or A[p, q] is already 0."""
    diagonal = _diagonal(A)
    own = (A * partner).sum(-1)  # A[i, partner(i)]
    across = (partner * diagonal.unsqueeze(-2)).sum(-1)  # A[partner(i), partner(i)]
    zero = (own == 0) | (paired == 0)
    theta = (across - diagonal) / (2 * zero.where(1.0, own))
    t = theta.sign() / (theta.abs() + (theta * theta + 1).sqrt())
    t = zero.where(0.0, (theta == 0).where(first, t))
    c = 1 / (t * t + 1).sqrt()
    eye = Tensor.eye(A.shape[-1], device=A.device, dtype=A.dtype)
    return c.unsqueeze(-1) * eye + (t * c).unsqueeze(-1) * partner


class _Eigh(Function):
    """eigh with the analytic derivative (differentiating the Jacobi iterations is slow and inexact):
    for A = V diag(w) V^T, dA = V (diag(gw) + F o (V^T gV)) V^T with F_ij = 1 / (w_j - w_i), symmetrized."""

    @staticmethod
    def forward(ctx, A: Tensor) -> tuple[Tensor, Tensor]:
        w, V = _jacobi(A, JACOBI_SWEEPS)
        order = w.argsort(-1)
        w = w.gather(-1, order)
        V = V.gather(-1, order.unsqueeze(-2).expand(*V.shape))
        w, V = w.contiguous(), V.contiguous()
        ctx.save_for_backward(w, V)
        return w, V

    @staticmethod
    def backward(ctx, g_w: Tensor, g_V: Tensor) -> Tensor:
        w, V = ctx.saved_tensors
        gap = w.unsqueeze(-2) - w.unsqueeze(-1)  # [i, j]: w_j - w_i
        n = w.shape[-1]
        off = 1 - Tensor.eye(n, device=w.device, dtype=w.dtype)
        F = off / (gap + (1 - off))  # 0 on the diagonal
        inner = (V.transpose(-1, -2) @ g_V) * F + g_w.unsqueeze(-1) * Tensor.eye(
            n, device=w.device, dtype=w.dtype
        )
        grad = V @ inner @ V.transpose(-1, -2)
        return (grad + grad.transpose(-1, -2)) * 0.5


def eigh(A: Tensor, UPLO: str = "L") -> tuple[Tensor, Tensor]:
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric matrix, as torch.linalg.eigh (reads
    the lower triangle; UPLO="U": the upper). Each eigenvector's sign is unspecified, as in torch."""
    _square(A, "eigh")
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    A = _lower_symmetric(A if UPLO == "L" else A.transpose(-1, -2))
    return EighResult(*_Eigh.apply(A))


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:
    """The eigenvalues of a symmetric matrix, ascending, as torch.linalg.eigvalsh."""
    return eigh(A, UPLO).eigenvalues


__all__ = ["solve", "inv", "det", "slogdet", "cholesky", "qr", "eigh", "eigvalsh"]
