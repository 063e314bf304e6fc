"""Second-order (O2P / DeepO2P) region pooling with matrix normalization.

For conv features ``f_p ∈ ℝ^C`` at pixels ``p`` and region weights ``w_p >= 0`` (a binary or
soft mask), the pooled descriptor of region ``r`` is::

    C_r = Σ_p w_p f_p f_pᵀ / Σ_p w_p                 (average second moment; O2P)
    C_r = Σ_p w_p (f_p − μ_r)(f_p − μ_r)ᵀ / Σ_p w_p    (center=True; μ_r = Σ w_p f_p / Σ w_p)
    Y_r = f(C_r + εI)                                 (f = log, √·, ·^p, Newton–Schulz √·, id)
    y_r = vec(s(Y_r))                                 (optional signed power s, √2-isometric vec)

With ``f = log`` this is the log-tangent-space mapping of O2P (Carreira et al. 2012) that
DeepO2P (Ionescu et al. 2015, Sec. 4.1) trains end-to-end by matrix backpropagation.

Two exact routes compute ``Y_r`` (see :mod:`._gram` for the identity):

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

import torch
from torch import Tensor

from matbackprop.linalg import logm, powm, spectral_function, sqrtm, sqrtm_newton_schulz
from matbackprop.validation import DefinitenessError, check_int

from .._signed_power import signed_power
from .._vectorize import vectorize_symmetric
from ._gram import GramFunction
from ._options import PoolingOptions
from ._regions import (
    check_features,
    check_masks,
    check_values,
    dense_moment,
    name_regions,
    plan_routes,
    region_rows,
    support_buckets,
)


def _sym(M: Tensor) -> Tensor:
    return 0.5 * (M + M.mT)


def _identity(n: int, like: Tensor) -> Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def covariance_function(M: Tensor, opts: PoolingOptions) -> Tensor:
    """``f(M + εI)`` by a C × C decomposition (or Newton–Schulz / identity).

    Raises :class:`~matbackprop.validation.DefinitenessError` (``opts.check``) when ``M + εI``
    is outside the domain of ``f`` beyond rounding.
    """
    # ε is added before the decomposition (not as linalg's eigenvalue shift): a rank-deficient
    # M has (near-)zero eigenvalues on which float32 LAPACK syevd is erratically slow
    # (denormals; up to seconds per batch), while M + εI has none. Same function of M.
    shifted = M + opts.eps * _identity(M.shape[-1], M) if opts.eps else M
    if opts.normalization == "log":
        return logm(shifted, check=opts.check)
    if opts.normalization == "sqrt":
        return sqrtm(shifted, check=opts.check)
    if opts.normalization == "pow":
        return powm(shifted, opts.power, check=opts.check)
    if opts.normalization == "newton_schulz":
        return sqrtm_newton_schulz(shifted, opts.iterations, check=opts.check)
    return shifted


def gram_function(X: Tensor, opts: PoolingOptions) -> Tensor:
    """``f(ε) I + Xᵀ g(XXᵀ) X`` for rows ``X (n, p, C)``: the exact low-rank route.

    ``g`` is applied to ``K + εI`` with the argument shifted back (``g(s − ε)``), so that the
    decomposed matrix has no (near-)zero eigenvalues: zero padding rows and duplicated pixels
    make ``K`` singular, and float32 LAPACK ``syevd`` is then erratically slow (denormals) or
    fails to converge. Mathematically nothing changes.
    """
    gram = GramFunction(opts.normalization, opts.eps, opts.power, piecewise=opts.check)  # type: ignore[arg-type]  # not None on this route
    g, dg, d2g, dd = gram.scalar_functions(shifted=True)
    K = X @ X.mT  # (n, p, p)
    K = _sym(K) + gram.eps * _identity(K.shape[-1], K)
    G = spectral_function(K, g, dg, d2f=d2g, divided_difference=dd, check=opts.check)
    Y = X.mT @ (G @ X)  # (n, C, C), symmetric up to rounding (symmetrized by the caller)
    Y.diagonal(dim1=-2, dim2=-1).add_(gram.f_eps())  # + f(ε) I (bmm does not save its output)
    return Y


def _singular_regions_error(
    err: DefinitenessError, indices: Tensor, R: int, support: Tensor, opts: PoolingOptions
) -> ValueError:
    """Name the regions whose pooled matrices failed, and say what to change."""
    flat = indices.index_select(0, torch.tensor(err.indices, device=indices.device))
    regions = torch.stack([flat // R, flat % R], dim=-1)
    pixels = sorted({int(p) for p in support.index_select(0, flat).tolist()})
    return ValueError(
        f"second-order pooling with normalization={opts.normalization!r}: the pooled matrix "
        f"C_r + eps·I (eps={opts.eps!r}) is numerically singular, also in float64, for "
        f"{name_regions(regions)} (supports of {pixels} pixels; a region of p pixels has rank "
        "<= p). Pass a larger `eps` (for features of unit scale eps=1e-3 is ample), or "
        f"normalization='sqrt' (defined at zero). [{err}]"
    )


def second_order_pooling(
    features: Tensor,
    masks: Tensor | None = None,
    *,
    max_support: int | None = None,
    options: PoolingOptions | None = None,
    **overrides,
) -> Tensor:
    """Second-order region pooling ``vec(s(f(C_r + εI)))`` of conv features (O2P / DeepO2P).

    Parameters
    ----------
    features : Tensor, shape (B, C, H, W)
        Conv features, float32 or float64, any device.
    masks : Tensor, shape (B, R, H, W), optional
        Region weights ``w_p >= 0`` (bool, integer or floating; binary or soft). Every region
        needs a positive total weight. ``None`` pools each image as a single region.
    max_support : int, optional
        An upper bound, known on the host, on the number of pixels with positive weight in any
        region (e.g. the largest superpixel). It matters with ``check=False``, which plans
        without host syncs: every region is then pooled in one group of ``max_support`` rows
        (``H·W`` without it, exact but slower for small regions). With ``check=True`` the
        regions are grouped by their measured support, and ``max_support`` is checked.
    options : PoolingOptions, optional
        The options (normalization, eps, center, power, iterations, signed_power,
        signed_power_delta, vectorize, route, gram_ratio, compute_dtype, check); see
        :class:`~matbackprop.nn.PoolingOptions` for each. Default ``PoolingOptions()``.
    **overrides
        Any of those options by name, e.g. ``normalization="sqrt", eps=1e-2`` (replacing the
        fields of ``options``).

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
        with masks that require grad, or pooled matrices outside the domain of ``f`` even in
        float64 (e.g. ``eps = 0`` with a rank-deficient region and ``"log"``; the message
        names the regions and what to change).
    TypeError
        For an unknown option name.

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

    *Accuracy first.* The moment of a region of ``p`` pixels has rank ``<= min(p, C)``. For
    ``p < C`` the covariance route decomposes a matrix with ``C − p`` eigenvalues equal to
    ``ε``, computed with rounding ``~ C eps ‖C_r‖``, which ``log`` amplifies by ``1/ε``
    (float32, C = 16, ε = 1e-3: output error 1e-3 at feature scale 10, 3e-2 at 30, a
    numerically singular matrix at 100); the Gram route places them at exactly ``ε`` (error
    ~1e-4 up to scale 1000). For ``p > C`` it is the other way round. ``"auto"`` therefore
    takes the Gram route exactly for rank-deficient regions, and ``"gram"`` too (regions with
    ``p >= C`` take the covariance route). When a covariance group is still outside the
    domain of ``f`` beyond rounding in float32 (masks that require grad, ``eps`` far below the
    feature scale), that group is recomputed in float64 and cast back; if it fails in float64
    too, the error names the regions. ``check=False`` skips these checks (and the retry).

    ``ε`` is added to the matrix *before* the decomposition (``K + εI`` with a shifted ``g`` in
    the Gram route): float32 LAPACK ``syevd`` on singular matrices was measured up to 100×
    slower (denormals) and occasionally fails to converge (then linalg recomputes that batch
    in float64 with a ``RuntimeWarning``).

    *Cost* per region: covariance ``O(C²p + C³)``; Gram ``O(C²p + Cp² + p³)``. Regions are
    processed in groups of similar support size (little zero padding); each group is one
    batched decomposition. Planning the groups synchronises with the host once.

    *Host syncs.* With ``check=False`` nothing is read back to the host, forward or backward:
    all regions form one group of ``max_support`` rows (``H·W`` if not given; ``H·W`` too for
    masks that require grad), which takes the Gram route when ``max_support < C`` (``"gram"``;
    ``< gram_ratio · C`` for ``"auto"``) and the covariance route otherwise (exact either way),
    and the Gram route's divided differences are evaluated with ``torch.where`` instead of
    on boolean subsets. The result equals the ``check=True`` one up to rounding.

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
    >>> from matbackprop.nn.functional import second_order_pooling
    >>> x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    >>> masks = torch.zeros(2, 3, 5, 5, dtype=torch.bool)
    >>> masks[:, 0, :2], masks[:, 1, 2:], masks[:, 2] = True, True, True
    >>> second_order_pooling(x, masks).shape
    torch.Size([2, 3, 36])
    >>> second_order_pooling(x, masks, normalization="sqrt", vectorize=False).shape
    torch.Size([2, 3, 8, 8])
    """
    opts = PoolingOptions.resolve(options, overrides)
    features = check_features(features)
    B, C, H, W = features.shape
    N = H * W
    has_masks = masks is not None
    if has_masks:
        masks = check_masks(masks, features)
        mask_grad = masks.requires_grad and torch.is_grad_enabled()
        if opts.route == "gram" and mask_grad:
            raise ValueError(
                "`masks` must not require grad with route='gram' (the Gram route treats the "
                "support as fixed); use route='covariance' or 'auto' to differentiate the masks"
            )
        raw = masks.to(features.dtype) if masks.dtype != features.dtype else masks
        raw = raw.reshape(B, masks.shape[1], N)
        sums = raw.sum(-1)  # (B, R)
        if opts.check:
            check_values(features, masks, sums)
        weights = raw / sums.unsqueeze(-1)
    else:
        mask_grad = False
        if opts.check:
            check_values(features, None, None)
        weights = features.new_full((B, 1, N), 1.0 / N)
    R = weights.shape[1]
    out_dtype = features.dtype
    work_dtype = opts.compute_dtype or out_dtype
    rows = N if max_support is None else min(check_int(max_support, "max_support"), N)

    pixels = features.reshape(B, C, N).mT.contiguous()  # (B, N, C)
    weights = weights.reshape(B * R, N)  # (Q, N)
    image = torch.arange(B, device=features.device).repeat_interleave(R)  # (Q,)
    gram_available = opts.gram_available and not mask_grad

    def compute(indices: Tensor, size: int, gram_group: bool, dtype: torch.dtype) -> Tensor:
        everything = indices.numel() == B * R  # then indices == arange (sorted, unique)
        w_sel = weights if everything else weights.index_select(0, indices)
        img_sel = image if everything else image.index_select(0, indices)
        px, w_sel = pixels.to(dtype), w_sel.to(dtype)
        if gram_group:
            return gram_function(region_rows(px, w_sel, img_sel, size, opts.center), opts)
        if mask_grad:
            M = dense_moment(px, w_sel, img_sel, opts.center)
        else:
            X = region_rows(px, w_sel, img_sel, size, opts.center)
            M = X.mT @ X
        # linalg symmetrizes its input (and checks that M is symmetric up to rounding)
        return covariance_function(M, opts)

    def compute_accurately(indices: Tensor, size: int, gram_group: bool) -> Tensor:
        try:
            return compute(indices, size, gram_group, work_dtype)
        except DefinitenessError as err:
            failure = err
            if work_dtype != torch.float64:  # what float32 cannot resolve, float64 may
                try:
                    return compute(indices, size, gram_group, torch.float64).to(work_dtype)
                except DefinitenessError as err64:
                    failure = err64
        raise _singular_regions_error(failure, indices, R, support, opts) from failure

    def finish(Y: Tensor) -> Tensor:
        """Cast back, signed power, vectorize (reads the upper triangle) or symmetrize."""
        Y = Y.to(out_dtype)
        if opts.signed_power is not None:
            Y = signed_power(Y, opts.signed_power, opts.signed_power_delta)
        return vectorize_symmetric(Y) if opts.vectorize else _sym(Y)

    everything = torch.arange(B * R, device=features.device)
    if not has_masks:  # every region is the whole image: the plan is known on the host
        support = torch.full((B,), N, device=features.device)
        gram_group = plan_routes(N, C, opts.route, gram_available, opts.gram_ratio)
        if not opts.check:
            return finish(compute(everything, N, gram_group, work_dtype))
        return finish(compute_accurately(everything, N, gram_group))
    if not opts.check:
        # one group of `rows` rows (all pixels for masks that require grad): no host sync
        size = N if mask_grad else rows
        gram_group = plan_routes(size, C, opts.route, gram_available, opts.gram_ratio)
        Y = finish(compute(everything, size, gram_group, work_dtype))
        return Y.reshape(B, R, *Y.shape[1:])
    support = (weights > 0).sum(-1)  # (Q,)
    if max_support is not None and bool((support > rows).any()):
        raise ValueError(
            "`max_support` must bound every region's support (pixels of positive weight), "
            f"got max_support={max_support} and a region of {int(support.max())} pixels"
        )
    use_gram = plan_routes(support, C, opts.route, gram_available, opts.gram_ratio)

    pieces: list[tuple[Tensor, Tensor]] = []
    for gram_group in (True, False):
        sel = (use_gram == gram_group).nonzero().squeeze(-1)
        if sel.numel() == 0:
            continue
        # masks that require grad: dense over all pixels, differentiable in every weight
        jobs = [(sel, N)] if mask_grad else support_buckets(sel, support)
        for indices, size in jobs:
            pieces.append((indices, finish(compute_accurately(indices, size, gram_group))))

    order = torch.cat([indices for indices, _ in pieces])
    # rows in the order of `order` (groups sorted by support size)
    out = pieces[0][1] if len(pieces) == 1 else torch.cat([y for _, y in pieces])
    if not torch.equal(order, torch.arange(order.numel(), device=order.device)):
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        out = out.index_select(0, inverse)
    return out.reshape(B, R, *out.shape[1:])
