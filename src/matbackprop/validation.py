"""Input validation shared by every public function of matbackprop (torch and stdlib only).

One place for each check, at the bottom of the package beside :mod:`matbackprop.linalg`:
``linalg``, ``nn`` and the floors above call these instead of writing their own. Every check
raises :class:`ValueError` whose message names the argument, says what was expected and shows
what came, e.g. "`A` must have shape (..., n, n), got (3,)". Checks run once, at the public
boundary; public functions take ``check=False`` to skip the value checks on hot paths.

Cost: shape, dtype and option checks read Python attributes only; value checks (finiteness,
symmetry, sign, definiteness) synchronise with the host once each.

Tensor checks
    :func:`require_tensor`, :func:`check_float_dtype`, :func:`check_floating`,
    :func:`check_int_dtype`, :func:`check_ndim`, :func:`check_nonempty`, :func:`check_matrix`,
    :func:`check_finite`, :func:`check_nonnegative`, :func:`check_symmetric`,
    :func:`check_symmetric_matrix`.
Definiteness (relative to each matrix's scale and the dtype)
    :func:`definiteness_tolerance`, :func:`check_positive_definite`,
    :func:`check_positive_semidefinite`, raising :class:`DefinitenessError` (a ``ValueError``
    that also says which matrices of the batch failed).
Options
    :func:`check_number`, :func:`check_int`, :func:`check_bool`, :func:`check_choice`,
    :func:`check_compute_dtype`.

Definiteness
------------
A computed eigenvalue is only known to within rounding: a backward-stable eigensolver returns
the exact eigenvalues of ``A + E`` with ``‖E‖ <= p(n) · eps · ‖A‖``, and a Gram matrix ``FᵀF``
formed in floating point carries its own rounding of that size. Whether an eigenvalue is
*zero* is therefore judged relative to the matrix's scale and the dtype::

    tol = DEFINITENESS_FACTOR · n · eps · max|λ|            (per matrix, DEFINITENESS_FACTOR = 4)

- positive definite:      ``λ_min >  tol``;
- positive semi-definite: ``λ_min >= −tol``;
- a *numerical zero*:     ``|λ| <= tol`` (what :func:`matbackprop.linalg.sqrtm` and
  :func:`~matbackprop.linalg.powm` evaluate as exactly 0).

The same tolerance serves both checks, so a matrix is never "singular" for one and "definite"
for the other. The factor: the zero eigenvalues of ``FᵀF`` (``F`` random, ``n < d``, float32
and float64, ``d = 2 … 256``, dense and post-ReLU, scales 1e-3 … 1e3) came out below
``0.75 · n · eps · max|λ|`` with MKL on this project's CPU (``scripts/measure_numerics.py``),
so ``4 · n · eps`` leaves a margin of more than 5 for other LAPACK kernels, thread counts and
CPUs (``n · eps · max`` is also the rank tolerance of ``numpy.linalg.matrix_rank``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypeGuard, cast, overload

import torch
from torch import Tensor

__all__ = [
    "DEFINITENESS_FACTOR",
    "DefinitenessError",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "check_bool",
    "check_choice",
    "check_compute_dtype",
    "check_finite",
    "check_float_dtype",
    "check_floating",
    "check_int",
    "check_int_dtype",
    "check_matrix",
    "check_ndim",
    "check_nonempty",
    "check_nonnegative",
    "check_number",
    "check_positive_definite",
    "check_positive_semidefinite",
    "check_symmetric",
    "check_symmetric_matrix",
    "definiteness_tolerance",
    "require_tensor",
    "symmetric_rtol",
]

FLOAT_DTYPES = (torch.float32, torch.float64)
"""The dtypes every decomposition and layer computes in."""
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
"""Integer dtypes accepted for labels, indices and ``k``."""
DEFINITENESS_FACTOR = 4.0
"""``c`` in the definiteness tolerance ``c · n · eps · max|λ|`` (see the module docstring)."""


def _dtype_names(dtypes: Sequence[torch.dtype]) -> str:
    return " or ".join(str(d).replace("torch.", "") for d in dtypes)


# ----------------------------------------------------------------------------- tensors


def require_tensor(x: object, name: str) -> Tensor:
    """Return ``x`` if it is a :class:`torch.Tensor`, else raise naming ``name``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import require_tensor
    >>> require_tensor(torch.zeros(1), "A")
    tensor([0.])
    >>> require_tensor([0.0], "A")
    Traceback (most recent call last):
    ...
    ValueError: `A` must be a torch.Tensor, got list
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_float_dtype(
    x: Tensor, name: str, allowed: Sequence[torch.dtype] = FLOAT_DTYPES, hint: str = ""
) -> None:
    """``x.dtype`` is one of ``allowed`` (float32 or float64 by default).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_float_dtype
    >>> check_float_dtype(torch.zeros(2), "A")
    >>> check_float_dtype(torch.zeros(2, dtype=torch.float16), "A")
    Traceback (most recent call last):
    ...
    ValueError: `A` must have dtype float32 or float64, got torch.float16
    """
    if x.dtype not in allowed:
        raise ValueError(f"`{name}` must have dtype {_dtype_names(allowed)}, got {x.dtype}{hint}")


def check_floating(x: Tensor, name: str) -> None:
    """``x`` has any floating dtype (half precision included).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_floating
    >>> check_floating(torch.zeros(2, dtype=torch.float16), "features")
    >>> check_floating(torch.zeros(2, dtype=torch.int64), "features")
    Traceback (most recent call last):
    ...
    ValueError: `features` must have a floating dtype, got torch.int64
    """
    if not x.dtype.is_floating_point:
        raise ValueError(f"`{name}` must have a floating dtype, got {x.dtype}")


def check_int_dtype(x: Tensor, name: str) -> None:
    """``x`` has an integer dtype (:data:`INT_DTYPES`).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_int_dtype
    >>> check_int_dtype(torch.tensor([0, 1]), "labels")
    >>> check_int_dtype(torch.tensor([0.0, 1.0]), "labels")
    Traceback (most recent call last):
    ...
    ValueError: `labels` must have an integer dtype, got torch.float32
    """
    if x.dtype not in INT_DTYPES:
        raise ValueError(f"`{name}` must have an integer dtype, got {x.dtype}")


def check_ndim(x: Tensor, name: str, ndim: int | Sequence[int], want: str) -> None:
    """``x.ndim`` equals ``ndim`` (or is one of them); ``want`` describes the shape.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_ndim
    >>> check_ndim(torch.zeros(2, 3), "labels", (1, 2), "(m,) or (B, m)")
    >>> check_ndim(torch.zeros(2, 3, 4), "labels", (1, 2), "(m,) or (B, m)")
    Traceback (most recent call last):
    ...
    ValueError: `labels` must have shape (m,) or (B, m), got (2, 3, 4)
    """
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        raise ValueError(f"`{name}` must have shape {want}, got {tuple(x.shape)}")


def check_nonempty(x: Tensor, name: str, want: str) -> None:
    """No dimension of ``x`` is 0; ``want`` describes the shape.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_nonempty
    >>> check_nonempty(torch.zeros(2, 3), "F", "(B, m, d)")
    >>> check_nonempty(torch.zeros(2, 0), "F", "(B, m, d)")
    Traceback (most recent call last):
    ...
    ValueError: `F` must have non-empty dimensions (B, m, d), got (2, 0)
    """
    if any(size == 0 for size in x.shape):
        raise ValueError(f"`{name}` must have non-empty dimensions {want}, got {tuple(x.shape)}")


def check_matrix(x: Tensor, name: str, *, square: bool) -> None:
    """``x`` has shape ``(..., m, n)`` (``m == n`` when ``square``) with ``m, n >= 1``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_matrix
    >>> check_matrix(torch.zeros(5, 3, 3), "A", square=True)
    >>> check_matrix(torch.zeros(3, 4), "A", square=True)
    Traceback (most recent call last):
    ...
    ValueError: `A` must have shape (..., n, n) (square), got (3, 4)
    """
    shape = tuple(x.shape)
    if x.ndim < 2:
        want = "(..., n, n)" if square else "(..., m, n)"
        raise ValueError(f"`{name}` must have shape {want}, got {shape}")
    if square and shape[-1] != shape[-2]:
        raise ValueError(f"`{name}` must have shape (..., n, n) (square), got {shape}")
    if shape[-1] == 0 or shape[-2] == 0:
        raise ValueError(f"`{name}` must have non-empty matrix dimensions, got {shape}")


def check_finite(x: Tensor, name: str) -> None:
    """Every entry of ``x`` is finite (one host sync).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_finite
    >>> check_finite(torch.tensor([1.0, 2.0]), "x")
    >>> check_finite(torch.tensor([1.0, float("nan")]), "x")
    Traceback (most recent call last):
    ...
    ValueError: `x` must be finite, got 1 non-finite entries (NaN or inf)
    """
    x = x.detach()
    if not (x.is_floating_point() or x.is_complex()) or x.numel() == 0:
        return  # integers and empty tensors have no NaN or inf
    if x.is_complex():
        finite = bool(torch.isfinite(x).all())
    else:
        # one read of x and no x-sized temporary: aminmax propagates NaN to both results, and
        # an infinity is an extreme; so both are finite exactly when every entry is
        lo, hi = torch.aminmax(x)
        finite = bool(torch.isfinite(lo) & torch.isfinite(hi))
    if not finite:
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"`{name}` must be finite, got {bad} non-finite entries (NaN or inf)")


def check_nonnegative(x: Tensor, name: str, remedy: str = "") -> None:
    """Every entry of ``x`` is ``>= 0`` (one host sync); ``remedy`` is appended to the message.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_nonnegative
    >>> check_nonnegative(torch.tensor([0.0, 1.0]), "W")
    >>> check_nonnegative(torch.tensor([-1.0, 1.0]), "W")
    Traceback (most recent call last):
    ...
    ValueError: `W` must be non-negative, got minimum -1
    """
    smallest = x.detach().min()
    if bool(smallest < 0):
        raise ValueError(
            f"`{name}` must be non-negative, got minimum {float(smallest):.3g}{remedy}"
        )


def symmetric_rtol(dtype: torch.dtype) -> float:
    """Relative asymmetry tolerated in a "symmetric" input: ``sqrt(eps)`` of ``dtype``.

    ``max|A − Aᵀ| <= sqrt(eps) · max|A|``: lenient enough for Gram matrices ``FᵀF`` computed by
    a BLAS ``gemm`` (rounding ``~ n eps ‖F‖²``), strict enough to catch a matrix that is not
    symmetric at all.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import symmetric_rtol
    >>> symmetric_rtol(torch.float64) == torch.finfo(torch.float64).eps ** 0.5
    True
    """
    return float(torch.finfo(dtype).eps) ** 0.5


def check_symmetric(x: Tensor, name: str, rtol: float | None = None) -> None:
    """``max|A − Aᵀ| <= rtol · max|A|`` per matrix (``rtol`` defaults to :func:`symmetric_rtol`).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_symmetric
    >>> check_symmetric(torch.eye(3), "A")
    >>> check_symmetric(torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "A")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `A` must be symmetric: max|A - Aᵀ| / max|A| = 1 exceeds 0.000345; ...
    """
    if rtol is None:
        rtol = symmetric_rtol(x.dtype)
    x = x.detach()
    scale = x.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(x.dtype).tiny)
    worst = ((x - x.mT).abs().amax(dim=(-2, -1)) / scale).max()
    if bool(worst > rtol):
        raise ValueError(
            f"`{name}` must be symmetric: max|A - Aᵀ| / max|A| = {float(worst):.3g} exceeds "
            f"{rtol:.3g}; symmetrize it with (A + A.mT) / 2 if the asymmetry is rounding error"
        )


def check_symmetric_matrix(A: object, name: str, *, check: bool) -> Tensor:
    """Full check of a batch of symmetric matrices: tensor, dtype, shape, finite, symmetric.

    With ``check=False`` only the type is checked (no host sync).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_symmetric_matrix
    >>> A = check_symmetric_matrix(torch.eye(2, dtype=torch.float64), "A", check=True)
    >>> A.shape
    torch.Size([2, 2])
    >>> check_symmetric_matrix([[1.0]], "A", check=True)
    Traceback (most recent call last):
    ...
    ValueError: `A` must be a torch.Tensor, got list
    """
    A = require_tensor(A, name)
    if not check:
        return A
    check_float_dtype(A, name)
    check_matrix(A, name, square=True)
    check_finite(A, name)
    check_symmetric(A, name)
    return A


# ----------------------------------------------------------------------------- definiteness


def definiteness_tolerance(lam: Tensor) -> Tensor:
    """``DEFINITENESS_FACTOR · n · eps · max|λ|`` per matrix, shape ``(..., 1)``.

    ``lam (..., n)`` are the eigenvalues of each matrix; ``eps`` is that of their dtype. Computed
    on the device, without a host sync. See the module docstring for the rule and its margin.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import DEFINITENESS_FACTOR, definiteness_tolerance
    >>> lam = torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)
    >>> tol = definiteness_tolerance(lam)
    >>> tol.shape
    torch.Size([1, 1])
    >>> bool(tol == DEFINITENESS_FACTOR * 3 * torch.finfo(torch.float64).eps * 2.0)
    True
    """
    n = lam.shape[-1]
    eps = float(torch.finfo(lam.dtype).eps)
    return (DEFINITENESS_FACTOR * n * eps) * lam.abs().amax(dim=-1, keepdim=True)


class DefinitenessError(ValueError):
    """A batch of matrices is not (semi-)definite beyond rounding.

    A ``ValueError`` (catch it as one); ``indices`` are the flat batch indices of the matrices
    that failed, so that a caller can name what they are (e.g. a pooled region) or recompute
    them in a wider dtype.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import invsqrtm
    >>> from matbackprop.validation import DefinitenessError
    >>> A = torch.stack([torch.eye(2), -torch.eye(2)]).double()
    >>> try:
    ...     invsqrtm(A)
    ... except DefinitenessError as error:
    ...     print(error.indices, isinstance(error, ValueError))
    (1,) True
    """

    def __init__(self, message: str, indices: tuple[int, ...]) -> None:
        super().__init__(message)
        self.indices = indices


def _definiteness_error(
    lam: Tensor, bad: Tensor, name: str, kind: str, what: str, remedy: str
) -> DefinitenessError:
    indices = tuple(int(i) for i in torch.nonzero(bad.reshape(-1)).reshape(-1).tolist())
    index = indices[0]
    smallest = float(lam.amin(dim=-1).reshape(-1)[index])
    tol = float(definiteness_tolerance(lam).reshape(-1)[index])
    more = f" (and {len(indices) - 1} more)" if len(indices) > 1 else ""
    message = (
        f"`{name}` must be symmetric {kind} for {what}: matrix {index} of the batch{more} has "
        f"smallest eigenvalue {smallest:.3g}, against the rounding level "
        f"{DEFINITENESS_FACTOR:g}·n·eps·max|λ| = {tol:.3g} of its scale and dtype. {remedy}"
    )
    return DefinitenessError(message.rstrip(), indices)


def check_positive_definite(lam: Tensor, name: str, what: str, remedy: str = "") -> None:
    """Raise unless every matrix has ``λ_min > tol`` (:func:`definiteness_tolerance`).

    ``lam (..., n)`` are eigenvalues (e.g. those the forward computed anyway); ``what`` names
    the operation and ``remedy`` says what to change. One host sync.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_positive_definite
    >>> check_positive_definite(torch.tensor([[1.0, 2.0]]), "A", "matrix")
    >>> check_positive_definite(torch.tensor([[0.0, 2.0]]), "A", "matrix")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    matbackprop.validation.DefinitenessError: `A` must be symmetric positive definite ...
    """
    lam = lam.detach()
    bad = lam.amin(dim=-1, keepdim=True) <= definiteness_tolerance(lam)
    if bool(bad.any()):
        raise _definiteness_error(lam, bad, name, "positive definite", what, remedy)


def check_positive_semidefinite(lam: Tensor, name: str, what: str, remedy: str = "") -> None:
    """Raise unless every matrix has ``λ_min >= −tol`` (:func:`definiteness_tolerance`).

    Eigenvalues in ``[−tol, tol]`` are numerical zeros and pass. One host sync.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_positive_semidefinite
    >>> check_positive_semidefinite(torch.tensor([[-1e-9, 2.0]]), "A", "λ")  # rounding: passes
    >>> check_positive_semidefinite(torch.tensor([[-0.5, 2.0]]), "A", "λ")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    matbackprop.validation.DefinitenessError: `A` must be symmetric positive ...
    """
    lam = lam.detach()
    bad = lam.amin(dim=-1, keepdim=True) < -definiteness_tolerance(lam)
    if bool(bad.any()):
        raise _definiteness_error(lam, bad, name, "positive semi-definite", what, remedy)


# ----------------------------------------------------------------------------- options


def _is_real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@overload
def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = ...,
    maximum: float | None = ...,
    below: float | None = ...,
    positive: bool = ...,
    nonzero: bool = ...,
    allow_none: Literal[False] = ...,
) -> float: ...
@overload
def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = ...,
    maximum: float | None = ...,
    below: float | None = ...,
    positive: bool = ...,
    nonzero: bool = ...,
    allow_none: bool,
) -> float | None: ...
def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    positive: bool = False,
    nonzero: bool = False,
    allow_none: bool = False,
) -> float | None:
    """A finite real option (not a bool), returned as ``float``.

    ``minimum``: ``value >= minimum``; ``maximum``: ``value <= maximum``; ``below``:
    ``value < below``; ``positive``: ``value > 0``; ``nonzero``: ``value != 0``;
    ``allow_none``: ``None`` passes (and is returned). Messages read "`name` must be a finite
    number >= 0", "... in [0, 1]" (both bounds; "[0, 1)" with ``below``, "(0, 1)" with
    ``positive``), "... <= 1", "... < 1", "... > 0", "... non-zero number" (or "... or None").

    Examples
    --------
    >>> from matbackprop.validation import check_number
    >>> check_number(1, "eps", minimum=0)
    1.0
    >>> check_number(float("inf"), "eps", minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: `eps` must be a finite number >= 0, got inf
    >>> check_number(1.5, "alpha", minimum=0, maximum=1)
    Traceback (most recent call last):
    ...
    ValueError: `alpha` must be a finite number in [0, 1], got 1.5
    >>> check_number(1, "dropout", minimum=0, below=1)
    Traceback (most recent call last):
    ...
    ValueError: `dropout` must be a finite number in [0, 1), got 1
    """
    if value is None and allow_none:
        return None
    ok = _is_real(value) and math.isfinite(value)
    number = cast(float, value)  # a real number wherever `ok` is read below
    if ok and positive:
        ok = number > 0
    if ok and minimum is not None:
        ok = number >= minimum
    if ok and maximum is not None:
        ok = number <= maximum
    if ok and below is not None:
        ok = number < below
    if ok and nonzero:
        ok = number != 0
    if not ok:
        low = "(0" if positive else None if minimum is None else f"[{minimum:g}"
        high = None if maximum is None else f"{maximum:g}]"
        high = high if below is None else f"{below:g})"
        if low is not None and high is not None:
            want = f"a finite number in {low}, {high}"
        elif low is not None:
            want = "a finite number > 0" if positive else f"a finite number >= {minimum:g}"
        elif high is not None:
            want = (
                f"a finite number <= {maximum:g}"
                if below is None
                else f"a finite number < {below:g}"
            )
        elif nonzero:
            want = "a finite non-zero number"
        else:
            want = "a finite number"
        none = " or None" if allow_none else ""
        raise ValueError(f"`{name}` must be {want}{none}, got {value!r}")
    return float(number)


@overload
def check_int(
    value: object, name: str, *, minimum: int = ..., allow_none: Literal[False] = ...
) -> int: ...
@overload
def check_int(value: object, name: str, *, minimum: int = ..., allow_none: bool) -> int | None: ...
def check_int(
    value: object, name: str, *, minimum: int = 1, allow_none: bool = False
) -> int | None:
    """An int option (not a bool) ``>= minimum`` (default 1), or ``None`` if ``allow_none``.

    Examples
    --------
    >>> from matbackprop.validation import check_int
    >>> check_int(3, "k")
    3
    >>> check_int(None, "k", allow_none=True) is None
    True
    >>> check_int(0, "k")
    Traceback (most recent call last):
    ...
    ValueError: `k` must be a positive int, got 0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        want = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        none = " or None" if allow_none else ""
        raise ValueError(f"`{name}` must be {want}{none}, got {value!r}")
    return value


def check_bool(value: object, name: str) -> bool:
    """A bool option (``0``/``1`` are not accepted).

    Examples
    --------
    >>> from matbackprop.validation import check_bool
    >>> check_bool(True, "center")
    True
    >>> check_bool(1, "center")
    Traceback (most recent call last):
    ...
    ValueError: `center` must be a bool, got 1
    """
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool, got {value!r}")
    return value


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """``value`` is one of ``choices`` (compared with ``==``; ``None`` may be a choice).

    Examples
    --------
    >>> from matbackprop.validation import check_choice
    >>> check_choice("log", "normalization", ("log", "sqrt", None))
    >>> check_choice("exp", "normalization", ("log", "sqrt", None))
    Traceback (most recent call last):
    ...
    ValueError: `normalization` must be one of 'log' | 'sqrt' | None, got 'exp'
    """
    if value not in tuple(choices):
        listed = " | ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {listed}, got {value!r}")


def check_compute_dtype(value: object, name: str = "compute_dtype") -> torch.dtype | None:
    """``None``, ``torch.float32`` or ``torch.float64``: the dtype a computation runs in.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.validation import check_compute_dtype
    >>> check_compute_dtype(torch.float64)
    torch.float64
    >>> check_compute_dtype(torch.float16)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `compute_dtype` must be None, torch.float32 or torch.float64, got ...
    """
    if value is not None and value not in FLOAT_DTYPES:
        raise ValueError(f"`{name}` must be None, torch.float32 or torch.float64, got {value!r}")
    return value
