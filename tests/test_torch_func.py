"""The torch.func / torch.autograd.functional support table of docs/numerics.md, cell by cell.

Every "yes" cell is checked against central finite differences in float64 (the first
derivatives of the function; second derivatives against finite differences of its gradient,
whose own accuracy the ``grad`` column checks); every "no" cell checks the documented error, and
"zeros" cells the documented silent failure (so that the table changes when torch does).
Inputs are unconstrained ``X`` mapped to ``A0 + sym(X)`` (a symmetric positive definite ``A0``
with distinct eigenvalues) or ``M0 + X`` (rectangular), so finite differences stay symmetric.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.autograd.functional as AF
from torch import func

from matbackprop import linalg

F64 = torch.float64
H = 1e-6  # central-difference step: error ~ h² f‴ + eps / h ~ 1e-10 relative here


def _spd0() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=g))
    return Q @ torch.diag(torch.tensor([0.6, 1.3, 2.7], dtype=F64)) @ Q.mT


M0 = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
A0 = _spd0()


def _eigh(A, check):
    lam, U = linalg.eigh(A, check=check)
    # gauge invariant: the top-2 eigenprojector, and the eigenvalues
    return U[..., -2:] @ U[..., -2:].mT + torch.diag_embed(lam * torch.tensor([1.0, 2.0, 3.0]))


def _svd(M, check):
    U, S, Vh = linalg.svd(M, check=check)
    return (U[..., :2] * S[..., None, :2] ** 2) @ Vh[..., :2, :]  # Σ sᵢ² uᵢvᵢᵀ, sign invariant


def _atan(A, check, d2f=True):
    extra = {"d2f": lambda x: -2 * x / (1 + x * x) ** 2} if d2f else {}
    return linalg.spectral_function(A, torch.atan, lambda x: 1 / (1 + x * x), check=check, **extra)


# row -> (matrix function (A, check) -> Tensor, "sym" or "rect")
ROWS = {
    "eigh": (_eigh, "sym"),
    "svd": (_svd, "rect"),
    "logm": (lambda A, check: linalg.logm(A, check=check), "sym"),
    "sqrtm": (lambda A, check: linalg.sqrtm(A, check=check), "sym"),
    "invsqrtm": (lambda A, check: linalg.invsqrtm(A, check=check), "sym"),
    "powm": (lambda A, check: linalg.powm(A, 0.3, check=check), "sym"),
    "expm": (lambda A, check: linalg.expm(A, check=check), "sym"),
    "spectral_function (d2f)": (_atan, "sym"),
    "spectral_function (no d2f)": (partial(_atan, d2f=False), "sym"),
    "logm (clamp)": (lambda A, check: linalg.logm(A, clamp=1e-3, check=check), "sym"),
    "sqrtm_newton_schulz": (lambda A, check: linalg.sqrtm_newton_schulz(A, check=check), "sym"),
    "invsqrtm_newton_schulz": (
        lambda A, check: linalg.invsqrtm_newton_schulz(A, check=check),
        "sym",
    ),
    "projector": (lambda M, check: linalg.projector(M, check=check), "rect"),
}

OK = "yes"
NO_D2F = (RuntimeError, "need f″")  # spectral functions without a second derivative
NO_JVP = (NotImplementedError, "must implement the jvp")  # Newton–Schulz: no forward rule
DETACHED = (RuntimeError, "does not require grad|not have been used in the graph")
ZEROS = "zeros"  # once_differentiable under torch.autograd.functional: silently zero

SECOND = ("hessian", "double backward", "AF.hessian", "AF.vhp", "AF.hvp", "AF.jvp")
# once_differentiable: double backward raises; torch.autograd.functional (strict=False) fills the
# "unused" second derivatives with zeros
FIRST_ORDER_ONLY = {c: DETACHED for c in SECOND} | {
    c: ZEROS for c in ("AF.hessian", "AF.vhp", "AF.hvp", "AF.jvp")
}
NO_SECOND = {c: NO_D2F for c in SECOND}

# The table (docs/numerics.md, "torch.func support"): row -> {column: expected}; unlisted: yes.
TABLE: dict[str, dict[str, object]] = {
    "eigh": {**FIRST_ORDER_ONLY, "hessian": OK},
    "svd": {**FIRST_ORDER_ONLY, "hessian": OK},
    "spectral_function (no d2f)": NO_SECOND,
    "logm (clamp)": NO_SECOND,
    "sqrtm_newton_schulz": {
        **FIRST_ORDER_ONLY, "jvp": NO_JVP, "jacfwd": NO_JVP, "hessian": NO_JVP,
    },
    "invsqrtm_newton_schulz": {
        **FIRST_ORDER_ONLY, "jvp": NO_JVP, "jacfwd": NO_JVP, "hessian": NO_JVP,
    },
    "projector": {**FIRST_ORDER_ONLY, "hessian": ZEROS},
}  # fmt: skip
# AF.hvp differentiates the double backward with respect to its cotangent (the "double-vjp
# trick"); our second-order rules are not differentiable in it, so AF.hvp is zero everywhere
# it does not raise: use AF.vhp (the same for a symmetric Hessian) or torch.func.
for _row in ROWS:
    TABLE.setdefault(_row, {}).setdefault("AF.hvp", ZEROS)
COLUMNS = (
    "grad", "vjp", "vmap", "vmap(grad)", "jvp", "jacfwd", "jacrev", "hessian", "double backward",
    "AF.jacobian", "AF.vjp", "AF.jvp", "AF.hessian", "AF.vhp", "AF.hvp",
)  # fmt: skip


def _problem(row):
    fn, kind = ROWS[row]
    base = A0 if kind == "sym" else M0

    def g(X, check=True):
        return fn(base + ((X + X.mT) / 2 if kind == "sym" else X), check)

    gen = torch.Generator().manual_seed(2)
    W = torch.randn(g(torch.zeros_like(base)).shape, dtype=F64, generator=gen)

    def loss(X, check=True):
        return (g(X, check) * W).sum()

    X = 0.05 * torch.randn(base.shape, dtype=F64, generator=gen)
    T = torch.randn(base.shape, dtype=F64, generator=gen)  # a tangent / direction
    return g, loss, X, T


def _fd_jacobian(fn, X):
    """∂fn(X)/∂X by central differences: shape fn(X).shape + X.shape."""
    cols = []
    for i in range(X.numel()):
        E = torch.zeros_like(X).view(-1)
        E[i] = H
        E = E.view_as(X)
        cols.append((fn(X + E) - fn(X - E)) / (2 * H))
    return torch.stack(cols, dim=-1).reshape(*fn(X).shape, *X.shape)


def _fd_directional(fn, X, T):
    return (fn(X + H * T) - fn(X - H * T)) / (2 * H)


def _analytic_grad(loss, X):
    X = X.clone().requires_grad_(True)
    (gX,) = torch.autograd.grad(loss(X), X)
    return gX


def _cell(row, column):
    """(computed, finite-difference reference) of one cell."""
    g, loss, X, T = _problem(row)
    if column == "grad":
        return func.grad(loss)(X), _fd_jacobian(loss, X)
    if column == "vjp":
        V = torch.ones_like(g(X))
        _, pullback = func.vjp(g, X)
        return pullback(V)[0], torch.einsum("ij,ijkl->kl", V, _fd_jacobian(g, X))
    if column == "vmap":  # check=False: the checks are data-dependent control flow
        Xs = torch.stack([X, 2 * X, -X])
        return func.vmap(partial(g, check=False))(Xs), torch.stack([g(x) for x in Xs])
    if column == "vmap(grad)":
        Xs = torch.stack([X, 2 * X, -X])
        computed = func.vmap(func.grad(partial(loss, check=False)))(Xs)
        return computed, torch.stack([_fd_jacobian(loss, x) for x in Xs])
    if column == "jvp":
        return func.jvp(g, (X,), (T,))[1], _fd_directional(g, X, T)
    if column == "jacfwd":
        return func.jacfwd(g)(X), _fd_jacobian(g, X)
    if column == "jacrev":
        return func.jacrev(g)(X), _fd_jacobian(g, X)
    if column == "hessian":
        return func.hessian(loss)(X), _fd_jacobian(partial(_analytic_grad, loss), X)
    if column == "double backward":
        Xr = X.clone().requires_grad_(True)
        (gX,) = torch.autograd.grad(loss(Xr), Xr, create_graph=True)
        (hvp,) = torch.autograd.grad((gX * T).sum(), Xr)
        return hvp, _fd_directional(partial(_analytic_grad, loss), X, T)
    if column == "AF.jacobian":
        return AF.jacobian(g, X), _fd_jacobian(g, X)
    if column == "AF.vjp":
        V = torch.ones_like(g(X))
        return AF.vjp(g, X, V)[1], torch.einsum("ij,ijkl->kl", V, _fd_jacobian(g, X))
    if column == "AF.jvp":  # the double-vjp trick: a second backward
        return AF.jvp(g, X, T)[1], _fd_directional(g, X, T)
    if column == "AF.hessian":
        return AF.hessian(loss, X), _fd_jacobian(partial(_analytic_grad, loss), X)
    if column == "AF.vhp":
        return AF.vhp(loss, X, T)[1], _fd_directional(partial(_analytic_grad, loss), X, T)
    if column == "AF.hvp":
        return AF.hvp(loss, X, T)[1], _fd_directional(partial(_analytic_grad, loss), X, T)
    raise AssertionError(column)


CELLS = [(row, column) for row in ROWS for column in COLUMNS]


@pytest.mark.parametrize(("row", "column"), CELLS, ids=[f"{r}-{c}" for r, c in CELLS])
def test_support_table_cell(row, column):
    expected = TABLE.get(row, {}).get(column, OK)
    if isinstance(expected, tuple):
        error, message = expected
        with pytest.raises(error, match=message):
            _cell(row, column)
        return
    computed, reference = _cell(row, column)
    if expected == ZEROS:
        assert torch.count_nonzero(computed) == 0 and torch.count_nonzero(reference) > 0
        return
    scale = float(reference.abs().max())
    torch.testing.assert_close(computed, reference, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("row", ["logm", "eigh"])
def test_vmap_needs_check_false(row):
    """With the checks on, vmap refuses their data-dependent control flow (documented)."""
    g, _, X, _ = _problem(row)
    with pytest.raises(RuntimeError, match="vmap"):
        func.vmap(g)(torch.stack([X, X]))


def test_the_table_in_the_docs_lists_these_rows():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "numerics.md").read_text()
    section = text.split("## torch.func support", 1)[1].split("\n## ", 1)[0]
    assert "tests/test_torch_func.py" in section
    for name in ("eigh", "svd", "spectral_function", "logm", "sqrtm_newton_schulz", "projector"):
        assert f"`{name}`" in section, name
