"""SPDNet layers on symmetric positive definite matrices: BiMap, ReEig, LogEig.

A small Riemannian network on SPD matrices (Huang & Van Gool, AAAI 2017)::

    BiMap:   X ↦ WᵀXW,                 W ∈ St(n, m) (n × m, orthonormal columns, m <= n)
    ReEig:   X = UΣUᵀ ↦ U max(Σ, ε) Uᵀ  (eigenvalue rectification, the SPD "ReLU")
    LogEig:  X = UΣUᵀ ↦ U log(Σ) Uᵀ     (log-Euclidean flattening; optionally vectorized)

ReEig and LogEig are spectral functions computed by :func:`matbackprop.linalg.spectral_function`
/ :func:`matbackprop.linalg.logm`, so their gradients are the Daleckii–Krein form
``U (P ∘ Uᵀ G_sym U) Uᵀ`` -- exact at repeated eigenvalues, which are the rule after ReEig
(every clamped eigenvalue becomes ``ε``). SPDNet's original backward (through ``∂U``, with
``1/(σᵢ − σⱼ)``) is infinite there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from matbackprop.linalg import logm, spectral_function
from matbackprop.validation import (
    check_bool,
    check_compute_dtype,
    check_float_dtype,
    check_int,
    check_matrix,
    check_number,
    require_tensor,
)

from ._vectorize import vectorize_symmetric


def _check_square(X: object, name: str, size: int | None = None) -> Tensor:
    X = require_tensor(X, name)
    check_matrix(X, name, square=True)
    if size is not None and X.shape[-1] != size:
        raise ValueError(f"`{name}` must have shape (..., {size}, {size}), got {tuple(X.shape)}")
    check_float_dtype(X, name)
    return X


@contextmanager
def _input_named(layer: str) -> Iterator[None]:
    """Re-raise linalg's ValueError (which names its argument ``A``) as one about ``X``."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"`X` is not a valid input of {layer}: {err}") from err


def stiefel_from_raw(raw: Tensor) -> Tensor:
    """Orthonormal-column matrix ``W = Q · diag(sign(diag R))`` from ``raw = QR`` (thin QR).

    The sign fix makes ``W`` the unique Q factor with positive ``diag R``, so the map
    ``raw ↦ W`` is smooth where ``raw`` has full column rank; ``W = raw`` when ``raw`` already
    has orthonormal columns.
    """
    Q, R = torch.linalg.qr(raw, mode="reduced")
    signs = torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return Q * signs.unsqueeze(-2)


class BiMap(nn.Module):
    """Bilinear map ``X ↦ WᵀXW`` with ``W`` on the Stiefel manifold (SPDNet's BiMap layer).

    Parameters
    ----------
    in_dim : int
        Size ``n`` of the input matrices.
    out_dim : int
        Size ``m <= n`` of the output matrices.
    device, dtype : optional
        Of the parameter.

    Shape
    -----
    input ``(..., n, n)`` symmetric (SPD); output ``(..., m, m)``, symmetric, and SPD when the
    input is (``W`` has full column rank).

    Raises
    ------
    ValueError
        If ``in_dim``/``out_dim`` are not positive ints with ``out_dim <= in_dim`` (construction),
        or the input is not a float tensor of shape ``(..., in_dim, in_dim)`` (forward).

    Notes
    -----
    *Parametrization.* The trainable parameter ``raw_weight`` (``n × m``) is unconstrained; the
    layer uses ``W = stiefel_from_raw(raw_weight)``, the Q factor of its thin QR with
    ``diag R > 0``. Any optimizer works and ``W`` stays exactly orthonormal (to rounding); no
    retraction step is needed. Gradients flow through ``torch.linalg.qr`` (no eigendecomposition).
    This differs from the Riemannian SGD of Huang & Van Gool (tangent projection + retraction),
    but spans the same set of maps. Initialization: a random orthonormal ``raw_weight``
    (so ``W = raw_weight`` at start).

    References
    ----------
    Huang & Van Gool, "A Riemannian Network for SPD Matrix Learning", AAAI 2017, Sec. 3.1.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn import BiMap
    >>> layer = BiMap(5, 3).double()
    >>> X = torch.eye(5, dtype=torch.float64)
    >>> torch.allclose(layer(X), torch.eye(3, dtype=torch.float64))
    True
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int(in_dim, "in_dim")
        check_int(out_dim, "out_dim")
        if out_dim > in_dim:
            raise ValueError(
                f"`out_dim` must be <= in_dim ({in_dim}) for orthonormal columns, got {out_dim}"
            )
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.raw_weight = nn.Parameter(torch.empty(in_dim, out_dim, device=device, dtype=dtype))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random orthonormal columns (QR of a Gaussian matrix, global RNG)."""
        gaussian = torch.randn(self.in_dim, self.out_dim, dtype=torch.float64)
        self.raw_weight.copy_(stiefel_from_raw(gaussian).to(self.raw_weight.dtype))

    @property
    def weight(self) -> Tensor:
        """``W`` (``in_dim × out_dim``), orthonormal columns."""
        return stiefel_from_raw(self.raw_weight)

    def forward(self, X: Tensor) -> Tensor:
        X = _check_square(X, "X", self.in_dim)
        W = self.weight.to(X.dtype)
        Y = W.mT @ X @ W
        return 0.5 * (Y + Y.mT)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}"


def _identity(x: Tensor) -> Tensor:
    return x


def _one(x: Tensor) -> Tensor:
    return torch.ones_like(x)


class ReEig(nn.Module):
    """Eigenvalue rectification ``X = UΣUᵀ ↦ U max(Σ, ε) Uᵀ`` (SPDNet's ReEig layer).

    Parameters
    ----------
    eps : float
        Threshold ``ε > 0``.
    compute_dtype : torch.dtype, optional
        Decompose in this dtype and cast back.
    check : bool
        Validate the input (symmetric, finite). ``False`` skips it.

    Shape
    -----
    input ``(..., n, n)`` symmetric; output the same, SPD with eigenvalues ``>= ε``.

    Raises
    ------
    ValueError
        For ``eps`` not a finite number ``> 0``, or malformed input.

    Notes
    -----
    ``spectral_function(X, f=id, clamp=ε)``. Backward (Daleckii–Krein)::

        ∂ℓ/∂X = U (P ∘ Uᵀ G_sym U) Uᵀ,  Pᵢⱼ = (max(σᵢ, ε) − max(σⱼ, ε))/(σᵢ − σⱼ)
        (1 when both σ > ε, 0 when both are clamped, the slope in between; on ties the
        derivative 1[σ > ε])

    so gradients vanish in the clamped block and stay finite at the repeated eigenvalue ``ε``
    that ReEig itself creates (SPDNet's ``∂U`` form would divide by zero there).

    References
    ----------
    Huang & Van Gool, "A Riemannian Network for SPD Matrix Learning", AAAI 2017, Sec. 3.2.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn import ReEig
    >>> ReEig(0.5)(torch.diag(torch.tensor([0.1, 2.0], dtype=torch.float64)))
    tensor([[0.5000, 0.0000],
            [0.0000, 2.0000]], dtype=torch.float64)
    """

    def __init__(
        self, eps: float = 1e-4, *, compute_dtype: torch.dtype | None = None, check: bool = True
    ) -> None:
        super().__init__()
        self.eps = check_number(eps, "eps", positive=True)
        self.compute_dtype = check_compute_dtype(compute_dtype)
        self.check = check_bool(check, "check")

    def forward(self, X: Tensor) -> Tensor:
        X = _check_square(X, "X")
        with _input_named("ReEig"):
            return spectral_function(
                X,
                _identity,
                _one,
                clamp=self.eps,
                compute_dtype=self.compute_dtype,
                check=self.check,
            )

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"


class LogEig(nn.Module):
    """Matrix logarithm ``X = UΣUᵀ ↦ U log(Σ) Uᵀ`` (SPDNet's LogEig layer), optionally vectorized.

    Parameters
    ----------
    eps : float
        ``ε >= 0`` added to the eigenvalues first (``log(X + εI)``).
    vectorize : bool
        Return :func:`vectorize_symmetric` of the result, ``(..., n(n+1)/2)``.
    compute_dtype : torch.dtype, optional
        Decompose in this dtype and cast back.
    check : bool
        Validate the input (symmetric, finite, positive definite after ``eps``).

    Shape
    -----
    input ``(..., n, n)`` SPD; output ``(..., n, n)`` symmetric or ``(..., n(n+1)/2)``.

    Raises
    ------
    ValueError
        For invalid options or an input that is not SPD (after ``eps``).

    Notes
    -----
    :func:`matbackprop.linalg.logm`: Daleckii–Krein backward with
    ``Pᵢⱼ = (log σᵢ − log σⱼ)/(σᵢ − σⱼ)``, ``1/σᵢ`` on ties. Euclidean distances of the output
    are log-Euclidean distances of the inputs (with ``vectorize=True`` too, by the √2
    isometry).

    References
    ----------
    Huang & Van Gool, AAAI 2017, Sec. 3.3; Arsigny et al., "Log-Euclidean metrics for fast and
    simple calculus on diffusion tensors", MRM 2006; Ionescu et al., ICCV 2015, Sec. 4.1.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn import LogEig
    >>> LogEig()(torch.eye(2, dtype=torch.float64) * torch.e)
    tensor([[1., 0.],
            [0., 1.]], dtype=torch.float64)
    """

    def __init__(
        self,
        eps: float = 0.0,
        *,
        vectorize: bool = False,
        compute_dtype: torch.dtype | None = None,
        check: bool = True,
    ) -> None:
        super().__init__()
        self.eps = check_number(eps, "eps", minimum=0)
        self.vectorize = check_bool(vectorize, "vectorize")
        self.compute_dtype = check_compute_dtype(compute_dtype)
        self.check = check_bool(check, "check")

    def forward(self, X: Tensor) -> Tensor:
        X = _check_square(X, "X")
        with _input_named("LogEig"):
            Y = logm(X, eps=self.eps, compute_dtype=self.compute_dtype, check=self.check)
        return vectorize_symmetric(Y) if self.vectorize else Y

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}, vectorize={self.vectorize}"
