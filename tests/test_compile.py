"""torch.compile over linalg, SecondOrderPooling and NormalizedCuts: forward and backward equal
eager, and with ``check=False`` the only graph breaks are the documented ones (docs/compile.md).

The default run compiles with ``aot_eager`` (traces forward and backward like inductor, no code
generation: seconds); ``inductor`` (C++ code generation, a minute per cold cache on 2 cores) is
marked slow.
"""

from __future__ import annotations

import pytest
import torch

from matbackprop import linalg
from matbackprop.nn import NormalizedCuts, SecondOrderPooling
from matbackprop.nn.functional import ncuts_loss

ITEM = "Unsupported Tensor.item() call"
DYNAMIC = "Dynamic shape operator"
DATA = "Data dependent operator"


def _spd(b: int = 3, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(b, n, n, dtype=torch.float64, generator=g)
    return X @ X.mT / n + 0.5 * torch.eye(n, dtype=torch.float64)


def _rect() -> torch.Tensor:
    return torch.randn(3, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _eigh_loss(A, check):
    lam, U = linalg.eigh(A, check=check)
    P = U[..., -2:] @ U[..., -2:].mT  # gauge invariant: the top-2 eigenprojector
    return P.pow(2).sum() + (lam * torch.arange(6.0, dtype=A.dtype)).sum()


def _svd_loss(M, check):
    U, S, Vh = linalg.svd(M, check=check)
    return S.sum() + (U @ Vh).pow(2).mul(torch.linspace(0, 1, 5, dtype=M.dtype)).sum()


# Dynamo's own diagnostics while it traces (it reads `.grad` of non-leaf inputs for its guards,
# instantiates autograd Functions, notes lru_cache wrappers and builtins it does not trace):
# torch-internal warnings, not ours; our code's own warnings still fail these tests.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:torch._dynamo"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch._dynamo"),
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf"),
]

LABELS = torch.randint(0, 3, (2, 30), generator=torch.Generator().manual_seed(2))

# name -> (loss(x, check), input builder, graph-break reasons allowed with check=False)
CASES = {
    "logm": (lambda A, c: linalg.logm(A, check=c).pow(2).sum(), _spd, set()),
    "sqrtm": (lambda A, c: linalg.sqrtm(A, check=c).pow(2).sum(), _spd, set()),
    "invsqrtm": (lambda A, c: linalg.invsqrtm(A, check=c).sum(), _spd, set()),
    "powm": (lambda A, c: linalg.powm(A, 0.3, check=c).sum(), _spd, set()),
    "expm": (lambda A, c: linalg.expm(A, check=c).sum(), _spd, set()),
    "spectral_function": (
        lambda A, c: linalg.spectral_function(A, torch.tanh, lambda x: 1 - torch.tanh(x) ** 2,
                                              check=c).sum(),
        _spd,
        set(),
    ),
    "eigh": (_eigh_loss, _spd, set()),
    "svd": (_svd_loss, _rect, set()),
    "projector": (lambda M, c: linalg.projector(M, check=c).pow(2).sum(), _rect, set()),
    "sqrtm_newton_schulz": (
        lambda A, c: linalg.sqrtm_newton_schulz(A, check=c).pow(2).sum(), _spd, set()
    ),
    "invsqrtm_newton_schulz": (
        lambda A, c: linalg.invsqrtm_newton_schulz(A, check=c).sum(), _spd, set()
    ),
    "SecondOrderPooling": (
        lambda F, c: SecondOrderPooling("log", check=c)(F).pow(2).sum(),
        lambda: torch.randn(2, 4, 5, 5, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(3)),
        {DATA, DYNAMIC},  # regions are routed by their support sizes (data-dependent)
    ),
    "NormalizedCuts": (
        lambda F, c: ncuts_loss(NormalizedCuts(k=3, check=c, check_eigengap=False)(F), LABELS,
                                check=c),
        lambda: torch.rand(2, 30, 4, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(4)),
        # the segments of the labels size the loss's indicator matrix (a host value)
        {ITEM},
    ),
}  # fmt: skip


def _value_and_grad(fn, x):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y, x)
    return y.detach(), g


def _compare(name, backend, check, rtol):
    loss, build, _ = CASES[name]
    x = build()
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: loss(t, check), backend=backend)
    y, g = _value_and_grad(compiled, x)
    y0, g0 = _value_and_grad(lambda t: loss(t, check), x)
    torch.testing.assert_close(y, y0, rtol=rtol, atol=0)
    torch.testing.assert_close(g, g0, rtol=rtol, atol=rtol * float(g0.abs().max()))


@pytest.mark.parametrize("name", sorted(CASES))
def test_aot_eager_forward_and_backward_equal_eager(name):
    _compare(name, "aot_eager", check=False, rtol=1e-12)


@pytest.mark.parametrize("name", ["logm", "NormalizedCuts"])
def test_aot_eager_with_checks(name):
    """With ``check=True`` the validation's host syncs break the graph; results are the same."""
    _compare(name, "aot_eager", check=True, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_graph_breaks_without_checks_are_only_the_documented_ones(name):
    loss, build, allowed = CASES[name]
    torch._dynamo.reset()
    explain = torch._dynamo.explain(lambda t: loss(t, False))(build().requires_grad_(True))
    reasons = {r.reason.splitlines()[0] for r in explain.break_reasons}
    unexpected = {r for r in reasons if not any(r.startswith(a) for a in allowed)}
    assert not unexpected, f"{name}: graph breaks {unexpected}"
    if not allowed:
        assert explain.graph_break_count == 0


def test_the_checks_are_what_breaks_the_graph_with_check_true():
    """The test above can fail: the same function with ``check=True`` breaks at validation."""
    torch._dynamo.reset()
    explain = torch._dynamo.explain(lambda t: linalg.logm(t, check=True).sum())(_spd())
    assert any(r.reason.startswith(ITEM) for r in explain.break_reasons)


LINALG = sorted(name for name, case in CASES.items() if not case[2])


@pytest.mark.parametrize("name", LINALG)
def test_linalg_compiles_as_one_graph_without_checks(name):
    """``fullgraph=True``: no break at all, the decompositions and their backward included
    (under compile the Functions are applied without their jvp rule, linalg/_traceable.py)."""
    loss, build, _ = CASES[name]
    torch._dynamo.reset()
    f = torch.compile(lambda t: loss(t, False), fullgraph=True, backend="aot_eager")
    y, g = _value_and_grad(f, build())
    y0, g0 = _value_and_grad(lambda t: loss(t, False), build())
    torch.testing.assert_close(y, y0, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, g0, rtol=1e-12, atol=1e-12 * float(g0.abs().max()))


def test_forward_mode_still_works_outside_compile():
    """The jvp rules the compiled twins drop are still used by torch.func in eager mode."""
    A, T = _spd(), _spd()
    _, tangent = torch.func.jvp(lambda t: linalg.logm(t), (A,), (T,))
    h = 1e-6
    fd = (linalg.logm(A + h * T) - linalg.logm(A - h * T)) / (2 * h)
    torch.testing.assert_close(tangent, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["logm", "eigh", "svd", "sqrtm_newton_schulz",
                                  "SecondOrderPooling", "NormalizedCuts"])  # fmt: skip
@pytest.mark.parametrize("check", [True, False])
def test_inductor_forward_and_backward_equal_eager(name, check):
    # generated kernels reorder floating-point sums: equal to rounding, not bitwise
    _compare(name, "inductor", check=check, rtol=1e-10)
