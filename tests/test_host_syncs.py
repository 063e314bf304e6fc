"""No host syncs with ``check=False``: forward and backward of every linalg function and layer.

A host sync is any operation that needs a tensor's value (or a data-dependent size) on the
host: on an accelerator each one stalls the stream. They are counted on CPU by patching the
Python entry points that read values back (``bool()``, ``int()``, ``float()``, ``index()``,
``item``, ``tolist``, ``numpy``) and the operations whose output size depends on the data
(``nonzero``, ``unique``, ``masked_select``, boolean-mask indexing, ``torch.equal``,
``repeat_interleave`` without ``output_size``). Operations inside torch's C++ code are not
seen; the patch covers what our Python code can do.
"""

from __future__ import annotations

import contextlib
import functools
import traceback
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor

from matbackprop.linalg import (
    eigh,
    expm,
    invsqrtm,
    invsqrtm_newton_schulz,
    logm,
    powm,
    projector,
    spectral_function,
    sqrtm,
    sqrtm_newton_schulz,
    svd,
)
from matbackprop.nn import BiMap, LogEig, NCutsOptions, NormalizedCuts, ReEig, SecondOrderPooling
from matbackprop.nn.functional import (
    ncuts_loss,
    normalized_cuts,
    normalized_cuts_affinity,
    pairwise_affinity_loss,
    second_order_pooling,
    segment_counts,
)

F64 = torch.float64
_SRC = "matbackprop"

# Tensor methods that read a value back to the host, unconditionally.
_VALUE_METHODS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy")
# Operations whose output shape depends on the data (the size is read back).
_SIZE_METHODS = ("nonzero", "unique", "unique_consecutive", "masked_select", "argwhere")
_SIZE_FUNCTIONS = ("nonzero", "unique", "unique_consecutive", "masked_select", "argwhere", "equal")


def _caller() -> str:
    """The innermost frame in matbackprop (or the test) that made the call."""
    frames = traceback.extract_stack()[:-3]
    ours = [f for f in frames if _SRC in f.filename or "test_host_syncs" in f.filename]
    frame = (ours or frames)[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} ({frame.line})"


def _is_bool_mask(index: object) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(
        isinstance(item, Tensor) and item.dtype in (torch.bool, torch.uint8) for item in items
    )


class SyncCounter:
    """Patches the sync points for the duration of a ``with`` block; ``events`` lists them."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._active = True

    def record(self, name: str) -> None:
        if self._active:
            self._active = False  # a sync point calling another counts once
            try:
                self.events.append(f"{name} at {_caller()}")
            finally:
                self._active = True

    def wrap(self, name: str, original: Callable, when=None) -> Callable:
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            if when is None or when(*args, **kwargs):
                self.record(name)
            return original(*args, **kwargs)

        return wrapper

    @contextlib.contextmanager
    def patched(self) -> Iterator[SyncCounter]:
        with pytest.MonkeyPatch.context() as mp:
            for name in _VALUE_METHODS + _SIZE_METHODS:
                mp.setattr(Tensor, name, self.wrap(f"Tensor.{name}", getattr(Tensor, name)))
            for name in _SIZE_FUNCTIONS:
                mp.setattr(torch, name, self.wrap(f"torch.{name}", getattr(torch, name)))

            def mask_index(_self, index, *rest) -> bool:
                return _is_bool_mask(index)

            for name in ("__getitem__", "__setitem__"):
                original = getattr(Tensor, name)
                mp.setattr(Tensor, name, self.wrap(f"bool-mask {name}", original, mask_index))

            def unsized(*args, **kwargs) -> bool:
                repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
                return isinstance(repeats, Tensor) and kwargs.get("output_size") is None

            for owner in (torch, Tensor):
                original = owner.repeat_interleave
                mp.setattr(
                    owner,
                    "repeat_interleave",
                    self.wrap("repeat_interleave without output_size", original, unsized),
                )
            yield self


def assert_no_syncs(run: Callable[[], object]) -> None:
    """``run()`` (forward and backward) makes no host sync."""
    counter = SyncCounter()
    with counter.patched():
        run()
    assert not counter.events, "host syncs:\n" + "\n".join(counter.events)


def _backward(output, *inputs: Tensor) -> None:
    """A generic scalar of the outputs, differentiated to the inputs."""
    tensors = [t for t in (output if isinstance(output, tuple) else (output,)) if t is not None]
    total = sum(
        (t * torch.linspace(0.5, 1.5, t.numel(), dtype=t.dtype).reshape(t.shape)).sum()
        for t in tensors
    )
    grads = torch.autograd.grad(total, inputs, allow_unused=True)
    assert any(g is not None for g in grads)


# ----------------------------------------------------------------------------- the counter


def test_the_counter_sees_every_kind_of_sync():
    x = torch.arange(6.0)
    probes = {
        "bool": lambda: bool(x.sum() > 0),
        "int": lambda: int(x.sum()),
        "float": lambda: float(x.sum()),
        "item": lambda: x.sum().item(),
        "tolist": lambda: x.tolist(),
        "nonzero": lambda: (x > 2).nonzero(),
        "torch.nonzero": lambda: torch.nonzero(x),
        "unique": lambda: torch.unique(x),
        "equal": lambda: torch.equal(x, x),
        "mask indexing": lambda: x[x > 2],
        "mask assignment": lambda: x.clone().__setitem__(x > 2, 0.0),
        "repeat_interleave": lambda: torch.repeat_interleave(x, x.long()),
        "index": lambda: [0, 1, 2][torch.tensor(1)],
    }
    for name, probe in probes.items():
        counter = SyncCounter()
        with counter.patched():
            probe()
        assert counter.events, f"the counter missed a sync: {name}"
    # and sync-free code is not flagged
    counter = SyncCounter()
    with counter.patched():
        y = torch.where(x > 2, x, -x)[1:3]
        torch.repeat_interleave(x, x.long(), output_size=15)
        y.sum()
    assert not counter.events


def test_assert_no_syncs_fails_on_a_sync():
    with pytest.raises(AssertionError, match="host syncs"):
        assert_no_syncs(lambda: bool(torch.ones(()) > 0))


# ----------------------------------------------------------------------------- linalg


def _spd(n: int = 5, batch: int = 3, dtype=F64, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, n, n, generator=g, dtype=dtype)
    return (X @ X.mT / n + 0.5 * torch.eye(n, dtype=dtype)).requires_grad_()


def _sym(n: int = 5, batch: int = 3, dtype=F64) -> Tensor:
    X = torch.randn(batch, n, n, generator=torch.Generator().manual_seed(1), dtype=dtype)
    return (0.5 * (X + X.mT)).requires_grad_()


def _tie(dtype=F64) -> Tensor:
    """An SPD matrix with a repeated eigenvalue (the degeneracy policy's code path)."""
    Q, _ = torch.linalg.qr(
        torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=dtype)
    )
    lam = torch.tensor([1.0, 1.0, 2.0, 3.0], dtype=dtype)
    return ((Q * lam) @ Q.mT).unsqueeze(0).requires_grad_()


LINALG = {
    "eigh": lambda A: tuple(eigh(A, check=False)),
    "svd": lambda A: tuple(svd(A[..., :, :3], check=False)),
    "logm": lambda A: logm(A, check=False),
    "logm(eps, clamp)": lambda A: logm(A, eps=1e-3, clamp=1e-6, check=False),
    "logm(float64 compute)": lambda A: logm(A, compute_dtype=F64, check=False),
    "sqrtm": lambda A: sqrtm(A, check=False),
    "invsqrtm": lambda A: invsqrtm(A, check=False),
    "powm": lambda A: powm(A, 0.7, check=False),
    "expm": lambda A: expm(A, check=False),
    "spectral_function": lambda A: spectral_function(
        A, torch.log, torch.reciprocal, d2f=lambda x: -x.reciprocal().square(), check=False
    ),
    "projector": lambda A: projector(A[..., :, :2], check=False),
    "sqrtm_newton_schulz": lambda A: sqrtm_newton_schulz(A, 3, check=False),
    "invsqrtm_newton_schulz": lambda A: invsqrtm_newton_schulz(A, 3, check=False),
}


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(LINALG))
def test_linalg_forward_and_backward_make_no_host_sync(name, dtype):
    for A in (_spd(dtype=dtype), _tie(dtype)):
        assert_no_syncs(lambda A=A: _backward(LINALG[name](A), A))


@pytest.mark.parametrize("name", ["logm", "sqrtm", "spectral_function", "powm"])
def test_linalg_double_backward_makes_no_host_sync(name):
    A = _spd()

    def run():
        out = LINALG[name](A)
        out = out if isinstance(out, tuple) else (out,)
        total = sum((t * t).sum() for t in out)
        (g,) = torch.autograd.grad(total, A, create_graph=True)
        torch.autograd.grad(g.square().sum(), A)

    assert_no_syncs(run)


def test_linalg_symmetric_input_no_host_sync():
    A = _sym()
    assert_no_syncs(lambda: _backward(tuple(eigh(A, check=False)), A))
    assert_no_syncs(lambda: _backward(expm(A, check=False), A))


# ----------------------------------------------------------------------------- pooling


def _features(B=2, C=6, H=4, W=5, dtype=F64) -> Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(B, C, H, W, generator=g, dtype=dtype).requires_grad_()


def _masks(B=2, H=4, W=5, soft=False, dtype=F64) -> Tensor:
    """Three regions per image: 2, 6 and 12 pixels (Gram route, both routes, covariance)."""
    masks = torch.zeros(B, 3, H, W, dtype=dtype)
    masks[:, 0, 0, :2] = 1
    masks[:, 1, 1, :] = 1
    masks[:, 1, 0, 2] = 1
    masks[:, 2, 2:, :] = 1
    masks[:, 2, 0, 4:] = 1
    masks[:, 2, 1, :] = 1
    if soft:
        masks = masks * torch.linspace(0.5, 1.0, H * W, dtype=dtype).reshape(H, W)
    return masks


NORMALIZATIONS = ["log", "sqrt", "pow", "newton_schulz", None]


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("route", ["auto", "gram", "covariance"])
@pytest.mark.parametrize("regions", ["image", "masks", "soft masks"])
def test_pooling_makes_no_host_sync(normalization, route, regions):
    if route == "gram" and normalization in ("newton_schulz", None):
        pytest.skip("the Gram route needs a spectral normalization")
    # C = 24 channels: regions of <= 20 pixels take the Gram route ("auto", "gram")
    x = _features(C=24)
    masks = None if regions == "image" else _masks(soft=regions == "soft masks")
    options = {"normalization": normalization, "route": route, "check": False}
    for center in (False, True):
        for max_support in (None, 12):
            assert_no_syncs(
                lambda center=center, max_support=max_support: _backward(
                    second_order_pooling(
                        x, masks, center=center, max_support=max_support, **options
                    ),
                    x,
                )
            )


@pytest.mark.parametrize("route", ["auto", "covariance"])
def test_pooling_masks_that_require_grad_make_no_host_sync(route):
    x, masks = _features(), _masks(soft=True).requires_grad_()
    assert_no_syncs(
        lambda: _backward(second_order_pooling(x, masks, route=route, check=False), x, masks)
    )


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
def test_pooling_module_with_reduction_makes_no_host_sync(dtype):
    x = _features(C=8, dtype=dtype)
    layer = SecondOrderPooling("log", in_channels=8, reduce_dim=4, check=False).to(dtype)
    masks = _masks(dtype=dtype)
    assert_no_syncs(lambda: _backward(layer(x, masks, max_support=12), x))
    assert_no_syncs(lambda: _backward(layer(x), x))


@pytest.mark.parametrize("signed", [None, 0.5])
def test_pooling_signed_power_makes_no_host_sync(signed):
    x = _features()
    assert_no_syncs(lambda: _backward(second_order_pooling(x, signed_power=signed, check=False), x))


# ----------------------------------------------------------------------------- SPD layers


def test_spd_layers_make_no_host_sync():
    A = _spd(n=6)
    layers = torch.nn.Sequential(BiMap(6, 4), ReEig(check=False), LogEig(check=False)).double()
    assert_no_syncs(lambda: _backward(layers(A), A))


# ----------------------------------------------------------------------------- ncuts


def _ncuts_inputs(B=2, m=40, d=6, dtype=F64):
    g = torch.Generator().manual_seed(4)
    F = torch.rand(B, m, d, generator=g, dtype=dtype).requires_grad_()
    labels = torch.randint(0, 3, (B, m), generator=g)
    labels[:, :3] = torch.tensor([0, 1, 2])
    return F, labels


QUIET = {"check": False, "check_eigengap": False}


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "route, solver",
    [("lowrank", "auto"), ("lowrank", "gram"), ("lowrank", "svd"), ("dense", "auto")],
)
@pytest.mark.parametrize("k_kind", ["int", "tensor"])
@pytest.mark.parametrize("ignore_index", [None, 2])
def test_ncuts_and_loss_make_no_host_sync(route, solver, k_kind, ignore_index, dtype):
    F, labels = _ncuts_inputs(dtype=dtype)
    k = 3 if k_kind == "int" else torch.tensor([3, 2])

    def run():
        result = normalized_cuts(F, k, num_segments=3, route=route, solver=solver, **QUIET)
        loss = ncuts_loss(result, labels, num_segments=3, ignore_index=ignore_index, check=False)
        torch.autograd.grad(loss, F)

    assert_no_syncs(run)


def test_ncuts_module_and_segment_counts_make_no_host_sync():
    F, labels = _ncuts_inputs()
    layer = NormalizedCuts(options=NCutsOptions(**QUIET))

    def run():
        k = segment_counts(labels, num_segments=3, check=False)
        result = layer(F, k, num_segments=3)
        torch.autograd.grad(ncuts_loss(result, labels, num_segments=3, check=False), F)

    def run_with_labels():  # k inferred from the labels inside the layer
        result = layer(F, labels=labels, ignore_index=2, num_segments=3)
        torch.autograd.grad(ncuts_loss(result, labels, num_segments=3, check=False), F)

    assert_no_syncs(run)
    assert_no_syncs(run_with_labels)


def test_ncuts_affinity_makes_no_host_sync():
    F, labels = _ncuts_inputs(m=12)
    W = (F @ F.mT).detach().requires_grad_()

    def run():
        result = normalized_cuts_affinity(W, 3, **QUIET)
        torch.autograd.grad(ncuts_loss(result, labels, num_segments=3, check=False), W)

    assert_no_syncs(run)


def test_ncuts_eigengap_check_is_the_only_sync_left():
    """With ``check_eigengap=True`` the check syncs (it must read the gaps): counted, not hidden."""
    F, labels = _ncuts_inputs()
    counter = SyncCounter()
    with counter.patched():
        normalized_cuts(F, 3, num_segments=3, check=False)
    assert counter.events


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("normalize", [False, True])
def test_ncuts_loss_of_a_plain_embedding_makes_no_host_sync(reduction, normalize):
    F, labels = _ncuts_inputs()
    Z = torch.linalg.qr(F.detach())[0][..., :3].requires_grad_()
    degrees = (F.detach() @ F.detach().sum(-2, keepdim=True).mT).squeeze(-1).requires_grad_()
    k = torch.tensor([3, 2])

    def run():
        loss = ncuts_loss(
            Z,
            labels,
            degrees=degrees,
            k=k,
            num_segments=3,
            ignore_index=2,
            reduction=reduction,
            normalize=normalize,
            check=False,
        )
        _backward(loss, Z, degrees)

    assert_no_syncs(run)


def test_pairwise_affinity_loss_makes_no_host_sync():
    F, labels = _ncuts_inputs()
    pairs = torch.stack([torch.arange(39), torch.arange(1, 40)], dim=-1)
    weights = torch.linspace(0.5, 1.0, 39, dtype=F64)
    for ignore_index in (None, 2):
        assert_no_syncs(
            lambda ignore_index=ignore_index: _backward(
                pairwise_affinity_loss(
                    F[0], pairs, labels[0], ignore_index=ignore_index, weights=weights, check=False
                ),
                F,
            )
        )
