"""Second-order (O2P / DeepO2P) region pooling with matrix normalization.

For conv features ``f_p ∈ ℝ^C`` at pixels ``p`` and region weights ``w_p >= 0`` (a binary or
soft mask), the pooled descriptor of region ``r`` is::

    C_r = Σ_p w_p f_p f_pᵀ / Σ_p w_p                 (average second moment; O2P)
    C_r = Σ_p w_p (f_p − μ_r)(f_p − μ_r)ᵀ / Σ_p w_p    (center=True; μ_r = Σ w_p f_p / Σ w_p)
    Y_r = f(C_r + εI)                                 (f = log, √·, ·^p, Newton–Schulz √·, id)
    y_r = vec(s(Y_r))                                 (optional signed power s, √2-isometric vec)

With ``f = log`` this is the log-tangent-space mapping of O2P (Carreira et al. 2012) that
DeepO2P (Ionescu et al. 2015, Sec. 4.1) trains end-to-end by matrix backpropagation.

Two exact routes compute ``Y_r`` (see :mod:`._gram_functions` for the identity):

``"covariance"``
    Form ``C_r`` (C × C), then ``f(C_r + εI)`` by one C × C eigendecomposition
    (:func:`matbackprop.linalg.logm` etc., Daleckii–Krein backward).
``"gram"``
    With ``X_r`` the ``p × C`` matrix of rows ``√(w_p/Σw) (f_p − μ_r)`` over the ``p`` pixels of
    the region's support, ``f(X_rᵀX_r + εI) = f(ε) I + X_rᵀ g(X_r X_rᵀ) X_r``,
    ``g(t) = (f(ε + t) − f(ε))/t``: one ``p × p`` eigendecomposition (``p < C`` is the normal
    case for superpixels on a stride-8 map), also with the exact Daleckii–Krein backward.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

from matbackprop.linalg import logm, powm, spectral_function, sqrtm, sqrtm_newton_schulz

from ._gram_functions import NORMALIZATIONS_WITH_GRAM, GramFunction
from ._signed_power import check_signed_power_options, signed_power
from ._vectorize import symmetric_dim, vectorize_symmetric

NORMALIZATIONS = ("log", "sqrt", "newton_schulz", "pow", None)
ROUTES = ("auto", "gram", "covariance")


# ----------------------------------------------------------------------------- validation


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_pooling_options(
    *,
    normalization: str | None,
    eps: float,
    center: bool,
    power: float,
    iterations: int,
    signed_power_alpha: float | None,
    signed_power_delta: float,
    vectorize: bool,
    route: str,
    compute_dtype: torch.dtype | None,
    gram_ratio: float = 0.75,
) -> None:
    """Raise ``ValueError`` naming the first invalid option of second-order pooling."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}, got {normalization!r}")
    if not _is_number(eps) or not (0 <= eps < math.inf):
        raise ValueError(f"`eps` must be a finite number >= 0, got {eps!r}")
    if not isinstance(center, bool):
        raise ValueError(f"`center` must be a bool, got {center!r}")
    if normalization == "pow" and not (_is_number(power) and 0 < abs(power) < math.inf):
        raise ValueError(f"`power` must be a finite non-zero number, got {power!r}")
    if normalization == "newton_schulz" and (
        isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1
    ):
        raise ValueError(f"`iterations` must be an int >= 1, got {iterations!r}")
    if signed_power_alpha is not None:
        check_signed_power_options(
            signed_power_alpha, signed_power_delta, ("signed_power", "signed_power_delta")
        )
    if not isinstance(vectorize, bool):
        raise ValueError(f"`vectorize` must be a bool, got {vectorize!r}")
    if route not in ROUTES:
        raise ValueError(f"`route` must be one of {ROUTES}, got {route!r}")
    if not _is_number(gram_ratio) or not (0 < gram_ratio < math.inf):
        raise ValueError(f"`gram_ratio` must be a finite number > 0, got {gram_ratio!r}")
    if route == "gram":
        if normalization not in NORMALIZATIONS_WITH_GRAM:
            raise ValueError(
                f"`route`='gram' needs normalization in {NORMALIZATIONS_WITH_GRAM} (the Gram "
                f"identity needs a spectral function); got normalization={normalization!r}, "
                "use route='covariance'"
            )
        if eps <= 0:
            raise ValueError(
                f"`eps` must be > 0 for route='gram' (g(t) = (f(eps + t) - f(eps))/t), got {eps!r}"
            )
    if compute_dtype not in (None, torch.float32, torch.float64):
        raise ValueError(
            f"`compute_dtype` must be None, torch.float32 or torch.float64, got {compute_dtype!r}"
        )


def _validate_features(features: object) -> Tensor:
    if not isinstance(features, Tensor):
        raise ValueError(f"`features` must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 4:
        raise ValueError(f"`features` must have shape (B, C, H, W), got {tuple(features.shape)}")
    if min(features.shape) < 1:
        raise ValueError(
            f"`features` must have non-empty dimensions (B, C, H, W), got {tuple(features.shape)}"
        )
    if features.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"`features` must have dtype float32 or float64, got {features.dtype}")
    return features


def _validate_masks(masks: object, features: Tensor) -> Tensor:
    if not isinstance(masks, Tensor):
        raise ValueError(f"`masks` must be a torch.Tensor or None, got {type(masks).__name__}")
    B, _, H, W = features.shape
    if masks.ndim != 4:
        raise ValueError(f"`masks` must have shape (B, R, H, W), got {tuple(masks.shape)}")
    if masks.shape[0] != B or masks.shape[2:] != (H, W):
        raise ValueError(
            f"`masks` must have shape ({B}, R, {H}, {W}) to match `features` "
            f"{tuple(features.shape)}, got {tuple(masks.shape)}"
        )
    if masks.shape[1] < 1:
        raise ValueError(
            f"`masks` must hold at least one region (R >= 1), got {tuple(masks.shape)}"
        )
    if masks.is_complex():
        raise ValueError(f"`masks` must be real (bool, integer or floating), got {masks.dtype}")
    if masks.device != features.device:
        raise ValueError(
            f"`masks` must be on the device of `features` ({features.device}), got {masks.device}"
        )
    return masks


def _check_values(features: Tensor, masks: Tensor | None, sums: Tensor | None) -> None:
    if not bool(torch.isfinite(features).all()):
        bad = int((~torch.isfinite(features)).sum())
        raise ValueError(f"`features` must be finite, got {bad} non-finite entries")
    if masks is None or sums is None:
        return
    if masks.dtype.is_floating_point:
        if not bool(torch.isfinite(masks).all()):
            bad = int((~torch.isfinite(masks)).sum())
            raise ValueError(f"`masks` must be finite, got {bad} non-finite weights")
    if bool((masks < 0).any()):
        raise ValueError(
            f"`masks` must be non-negative weights, got minimum {float(masks.min()):.3g}"
        )
    empty = (sums <= 0).nonzero()
    if empty.numel():
        listed = ", ".join(f"region {int(r)} of image {int(b)}" for b, r in empty[:5].tolist())
        more = f" (and {empty.shape[0] - 5} more)" if empty.shape[0] > 5 else ""
        raise ValueError(
            f"`masks` must give every region a positive total weight; empty: {listed}{more}"
        )


# ----------------------------------------------------------------------------- pooling pieces


def _region_rows(
    pixels: Tensor, weights: Tensor, image: Tensor, support: int, center: bool
) -> Tensor:
    """Rows ``√w̃_p (f_p − μ)`` of each region over its (padded) support.

    ``pixels (B, N, C)``, normalized weights ``weights (n, N)`` (sum 1 per region), ``image
    (n,)`` the image of each region. Returns ``X (n, support, C)``; pixels outside the support
    get weight 0, so the padding rows of ``X`` are exactly zero.
    """
    N = pixels.shape[1]
    if support >= N:
        rows = pixels.index_select(0, image)  # (n, N, C)
        w = weights
    else:
        idx = torch.topk(weights, support, dim=-1, sorted=False).indices  # (n, p)
        flat = (image.unsqueeze(-1) * N + idx).reshape(-1)
        # index_select (backward: index_add) rather than advanced indexing (index_put)
        rows = pixels.reshape(-1, pixels.shape[-1]).index_select(0, flat)
        rows = rows.reshape(*idx.shape, pixels.shape[-1])  # (n, p, C)
        w = weights.gather(-1, idx)  # (n, p)
    if center:
        mu = (w.unsqueeze(-1) * rows).sum(-2, keepdim=True)  # (n, 1, C)
        rows = rows - mu
    return torch.sqrt(w).unsqueeze(-1) * rows


def _dense_moment(pixels: Tensor, weights: Tensor, image: Tensor, center: bool) -> Tensor:
    """``Σ_p w̃_p f_p f_pᵀ`` over all pixels, linear in the weights (for differentiable masks)."""
    F = pixels.index_select(0, image)  # (n, N, C)
    w = weights.unsqueeze(-1)  # (n, N, 1)
    if center:
        F = F - (w * F).sum(-2, keepdim=True)
    return (w * F).mT @ F  # (n, C, C)


def _sym(M: Tensor) -> Tensor:
    return 0.5 * (M + M.mT)


def _identity(n: int, like: Tensor) -> Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def _covariance_function(
    M: Tensor, normalization: str | None, eps: float, power: float, iterations: int, check: bool
) -> Tensor:
    """``f(M + εI)`` by a C × C decomposition (or Newton–Schulz / identity)."""
    # ε is added before the decomposition (not as linalg's eigenvalue shift): a rank-deficient
    # M has (near-)zero eigenvalues on which float32 LAPACK syevd is erratically slow
    # (denormals; up to seconds per batch), while M + εI has none. Same function of M.
    shifted = M + eps * _identity(M.shape[-1], M) if eps else M
    try:
        if normalization == "log":
            return logm(shifted, check=check)
        if normalization == "sqrt":
            return sqrtm(shifted, check=check)
        if normalization == "pow":
            return powm(shifted, power, check=check)
        if normalization == "newton_schulz":
            return sqrtm_newton_schulz(shifted, iterations, check=check)
        return shifted
    except ValueError as err:
        raise ValueError(
            f"second-order pooling with normalization={normalization!r} and eps={eps!r} failed on "
            f"the pooled matrices C_r (rank-deficient regions need `eps` > 0): {err}"
        ) from err


def _gram_function(X: Tensor, gram: GramFunction, check: bool) -> Tensor:
    """``f(ε) I + Xᵀ g(XXᵀ) X`` for rows ``X (n, p, C)``: the exact low-rank route.

    ``g`` is applied to ``K + εI`` with the argument shifted back (``g(s − ε)``), so that the
    decomposed matrix has no (near-)zero eigenvalues: zero padding rows, duplicated pixels and
    ``p > C`` all make ``K`` singular, and float32 LAPACK ``syevd`` is then erratically slow
    (denormals) or fails to converge. Mathematically nothing changes.
    """
    g, dg, d2g, dd = gram.scalar_functions(shifted=True)
    K = X @ X.mT  # (n, p, p)
    K = _sym(K) + gram.eps * _identity(K.shape[-1], K)
    G = spectral_function(K, g, dg, d2f=d2g, divided_difference=dd, check=check)
    Y = X.mT @ (G @ X)  # (n, C, C), symmetric up to rounding (symmetrized by the caller)
    Y.diagonal(dim1=-2, dim2=-1).add_(gram.f_eps())  # + f(ε) I (bmm does not save its output)
    return Y


def support_buckets(
    sel: Tensor, support: Tensor, growth: float = 1.25, slack: int = 8
) -> list[tuple[Tensor, int]]:
    """Split the regions ``sel`` into groups of similar support size (less zero padding).

    Sorted by support; a group closes when the next support exceeds ``growth · first + slack``.
    Returns ``(indices, largest support)`` per group, indices ascending within a group.
    """
    sizes = support.index_select(0, sel)
    order = torch.argsort(sizes)
    sorted_sizes = sizes.index_select(0, order).tolist()
    groups, start = [], 0
    for i in range(1, len(sorted_sizes) + 1):
        if i == len(sorted_sizes) or sorted_sizes[i] > growth * sorted_sizes[start] + slack:
            members = sel.index_select(0, order[start:i]).sort().values  # keep region order
            groups.append((members, int(sorted_sizes[i - 1])))
            start = i
    return groups


def plan_routes(
    support: Tensor, channels: int, route: str, gram_available: bool, gram_ratio: float = 0.75
) -> Tensor:
    """Boolean ``(Q,)``: which regions take the Gram route.

    ``"gram"``: all; ``"covariance"`` or Gram unavailable: none; ``"auto"``: regions whose
    support (number of pixels with positive weight) is below ``gram_ratio · channels`` (and
    below ``channels``: only then is the p × p problem the smaller one).
    """
    if route == "gram":
        return torch.ones_like(support, dtype=torch.bool)
    if route == "covariance" or not gram_available:
        return torch.zeros_like(support, dtype=torch.bool)
    return (support < gram_ratio * channels) & (support < channels)


# ----------------------------------------------------------------------------- functional


def second_order_pooling(
    features: Tensor,
    masks: Tensor | None = None,
    *,
    normalization: str | None = "log",
    eps: float = 1e-3,
    center: bool = False,
    power: float = 0.5,
    iterations: int = 5,
    signed_power_alpha: float | None = None,
    signed_power_delta: float = 1e-6,
    vectorize: bool = True,
    route: str = "auto",
    gram_ratio: float = 0.75,
    compute_dtype: torch.dtype | None = None,
    check: bool = True,
) -> Tensor:
    """Second-order region pooling ``vec(s(f(C_r + εI)))`` of conv features (O2P / DeepO2P).

    Parameters
    ----------
    features : Tensor, shape (B, C, H, W)
        Conv features, float32 or float64, any device.
    masks : Tensor, shape (B, R, H, W), optional
        Region weights ``w_p >= 0`` (bool, integer or floating; binary or soft). Every region
        needs a positive total weight. ``None`` pools each image as a single region.
    normalization : {"log", "sqrt", "newton_schulz", "pow", None}
        ``f``: matrix logarithm (O2P / DeepO2P), square root (MPN-COV), Newton–Schulz square
        root (iSQRT-COV, ``iterations`` steps, matmul only), power ``·^power``, or none (the
        regularized moment ``C_r + εI``).
    eps : float
        ``ε >= 0`` added to the diagonal. Must be ``> 0`` when a region has fewer pixels than
        channels and ``f`` needs a definite matrix (log, negative powers); the default ``1e-3``
        is a choice of this library (scale it with your features).
    center : bool
        Subtract the weighted mean (covariance) instead of the raw second moment (O2P default).
    power : float
        Exponent for ``normalization="pow"`` (non-zero).
    iterations : int
        Newton–Schulz steps for ``normalization="newton_schulz"``.
    signed_power_alpha : float, optional
        If given, apply the element-wise ``sign(x)((|x| + δ)^α − δ^α)`` (see
        :func:`signed_power`) to the normalized matrix entries, before vectorization.
    signed_power_delta : float
        ``δ > 0`` of the signed power (finite slope ``α δ^(α−1)`` at 0).
    vectorize : bool
        Return ``vec(Y_r)`` (upper triangle, √2 off the diagonal) instead of the matrices.
    route : {"auto", "gram", "covariance"}
        ``"covariance"``: C × C eigendecomposition per region. ``"gram"``: the exact low-rank
        identity with a ``p × p`` eigendecomposition, ``p`` the largest support (needs
        ``normalization`` in log/sqrt/pow and ``eps > 0``). ``"auto"``: per region, the Gram
        route when its support has fewer than ``gram_ratio · C`` (and ``C``) pixels and the
        route is available, else the covariance route.
    gram_ratio : float
        Threshold of ``"auto"``, as a fraction of ``C``. The default 0.75 is the measured CPU
        crossover (float32, C = 256, 32 regions: the Gram route is 7× faster at p = C/8, on
        par at p ≈ 0.75 C and 2× slower at p = C − 1; see benchmarks/bench_o2p_pooling.py).
    compute_dtype : torch.dtype, optional
        Dtype of the pooled products and the matrix function (e.g. ``torch.float64`` for
        float32 features, as the paper did); the result is cast back to ``features.dtype``.
    check : bool
        Validate values (finite features, non-negative finite weights, non-empty regions,
        symmetric/definite pooled matrices in linalg). Shapes and options are always checked.

    Returns
    -------
    Tensor
        ``(B, R, C(C+1)/2)`` with masks, ``(B, C(C+1)/2)`` without; with ``vectorize=False``
        ``(B, R, C, C)`` / ``(B, C, C)``. Dtype and device of ``features``.

    Raises
    ------
    ValueError
        For malformed ``features``/``masks`` (shapes, dtypes, devices), negative or non-finite
        weights, empty regions (naming region and image), invalid options, the Gram route
        without ``eps > 0`` or with masks that require grad, or pooled matrices outside the
        domain of ``f`` (e.g. ``eps = 0`` with a rank-deficient region and ``"log"``).

    Notes
    -----
    *Gram identity.* With ``X_r`` (``p × C``) the rows ``√(w_p/Σw)(f_p − μ_r)`` over the
    region's support, ``C_r = X_rᵀX_r`` and, for ``ε > 0``,
    ``f(C_r + εI) = f(ε) I + X_rᵀ g(X_r X_rᵀ) X_r`` with ``g(t) = (f(ε + t) − f(ε))/t`` (proof
    via the SVD of ``X_r``: both sides act as ``f(ε)`` on the null space of ``X_r`` and as
    ``f(ε + sᵢ²)`` on its right singular vectors). ``g`` is analytic at 0 (``g(0) = f′(ε)``),
    so zero-padded rows of regions smaller than the largest one are harmless. Gradients are
    the exact Daleckii–Krein form of ``g`` on the ``p × p`` Gram matrix, composed by autograd
    with the products; both routes agree to rounding (tested in float64).

    The Gram route treats the mask support as fixed: it does not differentiate with respect
    to the masks, so masks that require grad use the covariance route (``"auto"``) or raise
    (``"gram"``). The covariance route is linear in the weights and differentiates them.

    *Float32.* In the covariance route the ``C − p`` null-space eigenvalues of ``C_r`` carry
    rounding errors ``~1e-7‖C_r‖``, which ``log`` amplifies when ``ε`` is small; the Gram route
    places them at exactly ``ε`` (benchmark: max error of the float32 log descriptors against
    float64, 8e-5 covariance vs 1.2e-6 Gram). ``compute_dtype=torch.float64`` helps both.
    ``ε`` is added to the matrix *before* the decomposition (``K + εI`` with a shifted ``g`` in
    the Gram route): float32 LAPACK ``syevd`` on singular matrices was measured up to 100×
    slower (denormals) and occasionally fails to converge. If it still fails, the group of
    regions is recomputed in float64 with a ``RuntimeWarning``.

    *Cost* per region: covariance ``O(C²p + C³)``; Gram ``O(C²p + Cp² + p³)``. Regions are
    processed in groups of similar support size (little zero padding); each group is one
    batched decomposition.

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, "Matrix Backpropagation for Deep Networks with Structured
    Layers", ICCV 2015, Sec. 4.1 (DeepO2P, ``log(FᵀF + εI)``); Carreira, Caseiro, Batista &
    Sminchisescu, "Semantic Segmentation with Second-Order Pooling", ECCV 2012 (O2P); Li, Xie,
    Wang & Zuo, "Is Second-order Information Helpful for Large-scale Visual Recognition?",
    ICCV 2017 (MPN-COV); Li, Xie, Wang & Gao, "Towards Faster Training of Global Covariance
    Pooling Networks by Iterative Matrix Square Root Normalization", CVPR 2018 (iSQRT-COV).

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    >>> masks = torch.zeros(2, 3, 5, 5, dtype=torch.bool)
    >>> masks[:, 0, :2], masks[:, 1, 2:], masks[:, 2] = True, True, True
    >>> second_order_pooling(x, masks).shape
    torch.Size([2, 3, 36])
    """
    validate_pooling_options(
        normalization=normalization,
        eps=eps,
        center=center,
        power=power,
        iterations=iterations,
        signed_power_alpha=signed_power_alpha,
        signed_power_delta=signed_power_delta,
        vectorize=vectorize,
        route=route,
        compute_dtype=compute_dtype,
        gram_ratio=gram_ratio,
    )
    features = _validate_features(features)
    B, C, H, W = features.shape
    N = H * W
    has_masks = masks is not None
    if has_masks:
        masks = _validate_masks(masks, features)
        mask_grad = masks.requires_grad and torch.is_grad_enabled()
        if route == "gram" and mask_grad:
            raise ValueError(
                "`masks` must not require grad with route='gram' (the Gram route treats the "
                "support as fixed); use route='covariance' or 'auto' to differentiate the masks"
            )
        raw = masks.to(features.dtype) if masks.dtype != features.dtype else masks
        raw = raw.reshape(B, masks.shape[1], N)
        sums = raw.sum(-1)  # (B, R)
        if check:
            _check_values(features, masks, sums)
        weights = raw / sums.unsqueeze(-1)
    else:
        mask_grad = False
        if check:
            _check_values(features, None, None)
        weights = features.new_full((B, 1, N), 1.0 / N)
    R = weights.shape[1]
    out_dtype = features.dtype
    work_dtype = compute_dtype or out_dtype

    pixels = features.reshape(B, C, N).mT.contiguous()  # (B, N, C)
    weights = weights.reshape(B * R, N)  # (Q, N)
    image = torch.arange(B, device=features.device).repeat_interleave(R)  # (Q,)

    if has_masks:
        support = (weights > 0).sum(-1)  # (Q,)
    else:
        support = torch.full((B * R,), N, device=features.device)
    gram_available = normalization in NORMALIZATIONS_WITH_GRAM and eps > 0 and not mask_grad
    use_gram = plan_routes(support, C, route, gram_available, gram_ratio)

    def compute(indices: Tensor, size: int, gram_group: bool, dtype: torch.dtype) -> Tensor:
        everything = indices.numel() == B * R  # then indices == arange (sorted, unique)
        w_sel = weights if everything else weights.index_select(0, indices)
        img_sel = image if everything else image.index_select(0, indices)
        px, w_sel = pixels.to(dtype), w_sel.to(dtype)
        if gram_group:
            X = _region_rows(px, w_sel, img_sel, size, center)
            gram = GramFunction(normalization, float(eps), float(power))
            return _gram_function(X, gram, check)
        if mask_grad:
            M = _dense_moment(px, w_sel, img_sel, center)
        else:
            X = _region_rows(px, w_sel, img_sel, size, center)
            M = X.mT @ X
        # linalg symmetrizes its input (and checks that M is symmetric up to rounding)
        return _covariance_function(M, normalization, eps, power, iterations, check)

    def finish(Y: Tensor) -> Tensor:
        """Cast back, signed power, vectorize (reads the upper triangle) or symmetrize."""
        Y = Y.to(out_dtype)
        if signed_power_alpha is not None:
            Y = signed_power(Y, signed_power_alpha, signed_power_delta)
        return vectorize_symmetric(Y) if vectorize else _sym(Y)

    pieces: list[tuple[Tensor, Tensor]] = []
    for gram_group in (True, False):
        sel = (use_gram == gram_group).nonzero().squeeze(-1)
        if sel.numel() == 0:
            continue
        if mask_grad:  # dense over all pixels: differentiable in every weight
            jobs = [(sel, N)]
        else:
            jobs = support_buckets(sel, support)
        for indices, size in jobs:
            try:
                Y = compute(indices, size, gram_group, work_dtype)
            except torch.linalg.LinAlgError:
                if work_dtype == torch.float64:
                    raise
                warnings.warn(
                    "second_order_pooling: the float32 eigensolver failed to converge on a "
                    "group of regions; recomputed them in float64",
                    RuntimeWarning,
                    stacklevel=2,
                )
                Y = compute(indices, size, gram_group, torch.float64).to(work_dtype)
            pieces.append((indices, finish(Y)))

    order = torch.cat([indices for indices, _ in pieces])
    # rows in the order of `order` (groups sorted by support size)
    out = pieces[0][1] if len(pieces) == 1 else torch.cat([y for _, y in pieces])
    if not torch.equal(order, torch.arange(order.numel(), device=order.device)):
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        out = out.index_select(0, inverse)
    out = out.reshape(B, R, *out.shape[1:])
    return out if has_masks else out.squeeze(1)


# ----------------------------------------------------------------------------- module


class SecondOrderPooling(nn.Module):
    """Second-order region pooling layer (O2P / DeepO2P): ``vec(s(f(C_r + εI)))``.

    A drop-in ``torch.nn.Module`` around :func:`second_order_pooling`, with an optional 1×1
    convolution that reduces the channels before pooling (the descriptor has ``C(C+1)/2``
    entries, so ``C`` drives the classifier size)::

        f_p ← W f_p + b                       (reduce_dim: 1×1 conv, no nonlinearity)
        C_r = Σ_p w_p f_p f_pᵀ / Σ_p w_p      (center=True: covariance)
        y_r = vec(s(f(C_r + εI)))

    Parameters
    ----------
    normalization : {"log", "sqrt", "newton_schulz", "pow", None}
        See :func:`second_order_pooling` (``"log"``: DeepO2P).
    eps, center, power, iterations, vectorize, route, gram_ratio, compute_dtype, check
        See :func:`second_order_pooling`.
    signed_power : float, optional
        Exponent ``α`` of the element-wise signed power normalization (``None``: off).
    signed_power_delta : float
        Its shift ``δ > 0`` (finite derivative at 0).
    in_channels : int, optional
        Input channels; required with ``reduce_dim``, checked against the input when given.
    reduce_dim : int, optional
        Output channels of a 1×1 convolution applied before pooling.

    Shape
    -----
    - features: ``(B, C_in, H, W)``; masks: ``(B, R, H, W)`` or ``None``.
    - output: ``(B, R, D)`` / ``(B, D)``, ``D = C(C+1)/2`` with ``C = reduce_dim or C_in``;
      ``(B, R, C, C)`` / ``(B, C, C)`` when ``vectorize=False``.

    Raises
    ------
    ValueError
        For invalid options at construction and invalid inputs in ``forward``.

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, ICCV 2015, Sec. 4.1 (DeepO2P); Carreira et al., ECCV 2012
    (O2P); Li et al., ICCV 2017 (MPN-COV); Li et al., CVPR 2018 (iSQRT-COV).

    Examples
    --------
    >>> import torch
    >>> pool = SecondOrderPooling("log", in_channels=16, reduce_dim=8)
    >>> masks = torch.rand(2, 4, 7, 7) > 0.5
    >>> masks[..., 0, 0] = True
    >>> pool(torch.randn(2, 16, 7, 7), masks).shape
    torch.Size([2, 4, 36])
    """

    def __init__(
        self,
        normalization: str | None = "log",
        *,
        eps: float = 1e-3,
        center: bool = False,
        power: float = 0.5,
        iterations: int = 5,
        signed_power: float | None = None,
        signed_power_delta: float = 1e-6,
        vectorize: bool = True,
        in_channels: int | None = None,
        reduce_dim: int | None = None,
        route: str = "auto",
        gram_ratio: float = 0.75,
        compute_dtype: torch.dtype | None = None,
        check: bool = True,
    ) -> None:
        super().__init__()
        validate_pooling_options(
            normalization=normalization,
            eps=eps,
            center=center,
            power=power,
            iterations=iterations,
            signed_power_alpha=signed_power,
            signed_power_delta=signed_power_delta,
            vectorize=vectorize,
            route=route,
            compute_dtype=compute_dtype,
            gram_ratio=gram_ratio,
        )
        for name, value in (("in_channels", in_channels), ("reduce_dim", reduce_dim)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"`{name}` must be a positive int or None, got {value!r}")
        if reduce_dim is not None and in_channels is None:
            raise ValueError("`in_channels` must be given with `reduce_dim` (the 1×1 conv's input)")
        if not isinstance(check, bool):
            raise ValueError(f"`check` must be a bool, got {check!r}")
        self.normalization = normalization
        self.eps = float(eps)
        self.center = center
        self.power = float(power)
        self.iterations = iterations
        self.signed_power = signed_power
        self.signed_power_delta = float(signed_power_delta)
        self.vectorize = vectorize
        self.in_channels = in_channels
        self.reduce_dim = reduce_dim
        self.route = route
        self.gram_ratio = float(gram_ratio)
        self.compute_dtype = compute_dtype
        self.check = check
        self.reduce = (
            nn.Conv2d(in_channels, reduce_dim, kernel_size=1) if reduce_dim is not None else None
        )

    @property
    def channels(self) -> int | None:
        """Channels ``C`` of the pooled matrices (``reduce_dim`` or ``in_channels``)."""
        return self.reduce_dim if self.reduce_dim is not None else self.in_channels

    def descriptor_size(self, channels: int | None = None) -> int:
        """Length ``C(C+1)/2`` of one descriptor (``C`` from the module, or ``channels``)."""
        c = channels if channels is not None else self.channels
        if c is None or isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(
                f"`channels` must be a positive int (or set in_channels/reduce_dim), got {c!r}"
            )
        return symmetric_dim(c)

    def forward(self, features: Tensor, masks: Tensor | None = None) -> Tensor:
        features = _validate_features(features)
        if self.in_channels is not None and features.shape[1] != self.in_channels:
            raise ValueError(
                f"`features` must have {self.in_channels} channels (in_channels), got shape "
                f"{tuple(features.shape)}"
            )
        if self.reduce is not None:
            features = self.reduce(features)
        return second_order_pooling(
            features,
            masks,
            normalization=self.normalization,
            eps=self.eps,
            center=self.center,
            power=self.power,
            iterations=self.iterations,
            signed_power_alpha=self.signed_power,
            signed_power_delta=self.signed_power_delta,
            vectorize=self.vectorize,
            route=self.route,
            gram_ratio=self.gram_ratio,
            compute_dtype=self.compute_dtype,
            check=self.check,
        )

    def extra_repr(self) -> str:
        parts = [f"normalization={self.normalization!r}", f"eps={self.eps:g}"]
        if self.center:
            parts.append("center=True")
        if self.normalization == "pow":
            parts.append(f"power={self.power:g}")
        if self.normalization == "newton_schulz":
            parts.append(f"iterations={self.iterations}")
        if self.signed_power is not None:
            parts.append(f"signed_power={self.signed_power:g}")
        parts.append(f"route={self.route!r}")
        if self.route == "auto" and self.gram_ratio != 0.75:
            parts.append(f"gram_ratio={self.gram_ratio:g}")
        if not self.vectorize:
            parts.append("vectorize=False")
        if self.compute_dtype is not None:
            parts.append(f"compute_dtype={self.compute_dtype}")
        return ", ".join(parts)
