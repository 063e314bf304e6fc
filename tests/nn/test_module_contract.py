"""Contract suite of the nn modules: every module in the registry passes the same checks.

Smoke (shapes, finite), bad input (ValueError naming the argument), float64 gradcheck, dtype
and device follow the input, the module equals its functional form with the same options,
and the thread state is unchanged after forward and backward (issue 8 §2.6).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.nn import BiMap, LogEig, NormalizedCuts, ReEig, SecondOrderPooling
from matbackprop.nn import functional as F

from .. import builders

F64, F32 = torch.float64, torch.float32


@dataclass(frozen=True)
class ModuleEntry:
    name: str
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[torch.dtype], tuple]  # positional inputs; the first is differentiated
    shape: tuple[int, ...]  # of the checked output
    output: Callable[[object], torch.Tensor] = lambda y: y  # tensor view of the result
    functional: Callable[..., object] | None = None  # same options, same inputs
    bad: tuple[tuple[tuple, str], ...] = field(default_factory=tuple)  # (inputs, pattern)
    small: Callable[[], tuple] | None = None  # float64 gradcheck inputs (default: inputs)
    symmetric: bool = False  # the first input is a symmetric matrix (gradcheck through sym)


def _spd(n, batch=(2,), dtype=F64):
    return builders.random_spd(n, seed=5, batch=batch, dtype=dtype)


def _positive(B, m, d, dtype=F64):
    return torch.rand(B, m, d, generator=torch.Generator().manual_seed(6), dtype=dtype) + 0.1


def _affinity(B, m, dtype=F64):
    X = _positive(B, m, 3, dtype)
    return X @ X.mT


def _projector(result):
    """A gauge-invariant view of an NCutsResult: ZZᵀ (sign and rotation free) and λ."""
    return torch.cat([(result.Z @ result.Z.mT).flatten(1), result.eigenvalues], dim=1)


POOL_OPTIONS = {"eps": 0.05, "center": True}
NCUTS_OPTIONS = {"check_eigengap": False}

REGISTRY = [
    ModuleEntry(
        "SecondOrderPooling(log)",
        lambda: SecondOrderPooling("log", **POOL_OPTIONS),
        lambda dt: (builders.conv_features(dtype=dt), builders.region_masks(dtype=dt)),
        (2, 4, 21),
        functional=lambda x, m: F.second_order_pooling(x, m, normalization="log", **POOL_OPTIONS),
        bad=(
            ((torch.ones(2, 6, 4), None), r"`features` must have shape \(B, C, H, W\)"),
            ((torch.ones(2, 6, 4, 5, dtype=torch.int64), None), "`features` must have dtype"),
            ((builders.conv_features(), torch.ones(2, 1, 3, 5)), "`masks` must have shape"),
        ),
        small=lambda: (builders.conv_features(1, 3, 2, 3, seed=1), None),
    ),
    ModuleEntry(
        "SecondOrderPooling(sqrt, gram)",
        lambda: SecondOrderPooling("sqrt", route="gram", **POOL_OPTIONS),
        lambda dt: (builders.conv_features(dtype=dt), builders.region_masks(dtype=dt)),
        (2, 4, 21),
        functional=lambda x, m: F.second_order_pooling(
            x, m, normalization="sqrt", route="gram", **POOL_OPTIONS
        ),
        bad=(((builders.conv_features().numpy(), None), "`features` must be a torch.Tensor"),),
        small=lambda: (
            builders.conv_features(1, 4, 2, 3, seed=2),
            torch.tensor(
                [[[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]]]
            ),
        ),
    ),
    ModuleEntry(
        "SecondOrderPooling(newton_schulz, reduce_dim)",
        lambda: SecondOrderPooling("newton_schulz", in_channels=6, reduce_dim=3, eps=0.1),
        lambda dt: (builders.conv_features(dtype=dt), None),
        (2, 6),
        bad=(((builders.conv_features(C=5), None), "`features` must have 6 channels"),),
    ),
    ModuleEntry(
        "NormalizedCuts(lowrank)",
        lambda: NormalizedCuts(3, **NCUTS_OPTIONS),
        lambda dt: (_positive(2, 20, 6, dt),),
        (2, 20 * 20 + 3),
        output=_projector,
        functional=lambda x: F.normalized_cuts(x, 3, **NCUTS_OPTIONS),
        bad=(
            ((torch.ones(20, 6),), r"`features` must have shape \(B, m, d\)"),
            ((torch.full((2, 20, 6), float("nan")),), "`features` must be finite"),
        ),
        small=lambda: (_positive(1, 6, 4),),
    ),
    ModuleEntry(
        "NormalizedCuts(dense)",
        lambda: NormalizedCuts(2, route="dense", **NCUTS_OPTIONS),
        lambda dt: (_positive(2, 12, 4, dt),),
        (2, 12 * 12 + 2),
        output=_projector,
        functional=lambda x: F.normalized_cuts(x, 2, route="dense", **NCUTS_OPTIONS),
        bad=(((torch.ones(2, 12, 4, dtype=torch.int64),), "`features` must have dtype"),),
        small=lambda: (_positive(1, 5, 3),),
    ),
    ModuleEntry(
        "NormalizedCuts(affinity)",
        lambda: NormalizedCuts(2, route="affinity", **NCUTS_OPTIONS),
        lambda dt: (_affinity(2, 10, dt),),
        (2, 10 * 10 + 2),
        output=_projector,
        functional=lambda W: F.normalized_cuts_affinity(W, 2, **NCUTS_OPTIONS),
        bad=(
            ((torch.ones(2, 10, 9),), r"`affinity` must have shape \(B, m, m\)"),
            ((-_affinity(2, 10),), "`affinity` must be non-negative"),
        ),
        small=lambda: (_affinity(1, 5),),
        symmetric=True,
    ),
    ModuleEntry(
        "BiMap",
        lambda: BiMap(5, 3),
        lambda dt: (_spd(5, dtype=dt),),
        (2, 3, 3),
        bad=(((torch.ones(2, 4, 4),), r"`X` must have shape \(..., 5, 5\)"),),
        symmetric=True,
    ),
    ModuleEntry(
        "ReEig",
        lambda: ReEig(0.3),
        lambda dt: (_spd(4, dtype=dt),),
        (2, 4, 4),
        bad=(((torch.ones(2, 4, 3),), r"`X` must have shape \(..., n, n\)"),),
        symmetric=True,
    ),
    ModuleEntry(
        "LogEig(vectorize)",
        lambda: LogEig(vectorize=True),
        lambda dt: (_spd(4, dtype=dt),),
        (2, 10),
        bad=(((-torch.eye(4, dtype=F64),), "`X` is not a valid input of LogEig"),),
        symmetric=True,
    ),
]
IDS = [e.name for e in REGISTRY]


def _module(entry, dtype=F64):
    torch.manual_seed(0)
    return entry.build().to(dtype)


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_smoke_shape_dtype_and_backward(entry, dtype):
    inputs = entry.inputs(dtype)
    x = inputs[0].clone().requires_grad_()
    y = entry.output(_module(entry, dtype)(x, *inputs[1:]))
    assert y.shape == entry.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.bad], ids=lambda e: e.name)
def test_bad_input_raises_value_error_naming_the_argument(entry):
    module = _module(entry)
    for inputs, pattern in entry.bad:
        with pytest.raises(ValueError, match=pattern):
            module(*inputs)


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_gradcheck_float64(entry):
    module = _module(entry)
    inputs = entry.small() if entry.small is not None else entry.inputs(F64)
    x, rest = inputs[0].clone().requires_grad_(), inputs[1:]

    def fn(x):
        if entry.symmetric:  # gradcheck perturbs one entry at a time
            x = 0.5 * (x + x.mT)
        return entry.output(module(x, *rest))

    assert gradcheck(fn, (x,), fast_mode=True)


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.functional], ids=lambda e: e.name)
def test_module_equals_functional_form(entry):
    inputs = entry.inputs(F64)
    torch.testing.assert_close(
        entry.output(_module(entry)(*inputs)), entry.output(entry.functional(*inputs))
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_cuda_follows_input(entry):
    inputs = [t.cuda() if isinstance(t, torch.Tensor) else t for t in entry.inputs(F64)]
    y = entry.output(_module(entry).cuda()(*inputs))
    assert y.device == inputs[0].device


def _new_thread_count() -> int:
    out: list[int] = []
    worker = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    return out[0]


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_thread_state_unchanged(entry, monkeypatch):
    monkeypatch.setenv("MATBACKPROP_EIGH_THREADS", "2")
    torch.set_num_threads(2)  # restored by the autouse single_thread fixture
    inputs = entry.inputs(F64)
    x = inputs[0].clone().requires_grad_()
    entry.output(_module(entry)(x, *inputs[1:])).sum().backward()
    assert torch.get_num_threads() == 2
    assert _new_thread_count() == 2
