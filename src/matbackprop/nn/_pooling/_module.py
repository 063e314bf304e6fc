"""The second-order pooling layer: :class:`SecondOrderPooling`."""

from __future__ import annotations

from torch import Tensor, nn

from matbackprop.validation import check_int

from .._options import options_repr
from .._vectorize import symmetric_dim
from ._functional import second_order_pooling
from ._options import PoolingOptions
from ._regions import check_features

_UNSET = object()


class SecondOrderPooling(nn.Module):
    """Second-order region pooling layer (O2P / DeepO2P): ``vec(s(f(C_r + εI)))``.

    A ``torch.nn.Module`` around :func:`~matbackprop.nn.functional.second_order_pooling`, with
    an optional 1×1 convolution that reduces the channels before pooling (the descriptor has
    ``C(C+1)/2`` entries, so ``C`` drives the classifier size)::

        f_p ← W f_p + b                       (reduce_dim: 1×1 conv, no nonlinearity)
        C_r = Σ_p w_p f_p f_pᵀ / Σ_p w_p      (center=True: covariance)
        y_r = vec(s(f(C_r + εI)))

    Parameters
    ----------
    normalization : {"log", "sqrt", "newton_schulz", "pow", None}
        ``f`` (default ``"log"``: DeepO2P); see :class:`~matbackprop.nn.PoolingOptions`.
    in_channels : int, optional
        Input channels; required with ``reduce_dim``, checked against the input when given.
    reduce_dim : int, optional
        Output channels of a 1×1 convolution applied before pooling.
    options : PoolingOptions, optional
        All pooling options at once (``normalization`` and ``**overrides`` replace fields).
    **overrides
        Pooling options by name (eps, center, power, iterations, signed_power,
        signed_power_delta, vectorize, route, gram_ratio, compute_dtype, check), as in
        :class:`~matbackprop.nn.PoolingOptions`.

    Attributes
    ----------
    options : PoolingOptions
        The validated options, shared with the functional form.

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
    >>> from matbackprop.nn import SecondOrderPooling
    >>> pool = SecondOrderPooling("log", in_channels=16, reduce_dim=8)
    >>> masks = torch.rand(2, 4, 7, 7) > 0.5
    >>> masks[..., 0, 0] = True
    >>> pool(torch.randn(2, 16, 7, 7), masks).shape
    torch.Size([2, 4, 36])
    >>> SecondOrderPooling("sqrt", eps=1e-2, center=True)
    SecondOrderPooling(normalization='sqrt', eps=0.01, center=True)
    """

    def __init__(
        self,
        normalization: str | None = _UNSET,  # type: ignore[assignment]
        *,
        in_channels: int | None = None,
        reduce_dim: int | None = None,
        options: PoolingOptions | None = None,
        **overrides,
    ) -> None:
        super().__init__()
        if normalization is not _UNSET:
            overrides["normalization"] = normalization
        self.options = PoolingOptions.resolve(options, overrides)
        self.in_channels = check_int(in_channels, "in_channels", allow_none=True)
        self.reduce_dim = check_int(reduce_dim, "reduce_dim", allow_none=True)
        if reduce_dim is not None and in_channels is None:
            raise ValueError("`in_channels` must be given with `reduce_dim` (the 1×1 conv's input)")
        self.reduce = (
            nn.Conv2d(in_channels, reduce_dim, kernel_size=1)  # type: ignore[arg-type]  # checked above
            if reduce_dim is not None
            else None
        )

    @property
    def channels(self) -> int | None:
        """Channels ``C`` of the pooled matrices (``reduce_dim`` or ``in_channels``)."""
        return self.reduce_dim if self.reduce_dim is not None else self.in_channels

    def descriptor_size(self, channels: int | None = None) -> int:
        """Length ``C(C+1)/2`` of one descriptor (``C`` from the module, or ``channels``)."""
        c = channels if channels is not None else self.channels
        if c is None:
            raise ValueError(
                "`channels` must be a positive int (or set in_channels/reduce_dim), got None"
            )
        return symmetric_dim(check_int(c, "channels"))

    def forward(
        self, features: Tensor, masks: Tensor | None = None, *, max_support: int | None = None
    ) -> Tensor:
        """Pool ``features (B, C_in, H, W)`` over ``masks (B, R, H, W)`` (or whole images).

        ``max_support``: a host bound on the pixels of any region, for a plan without host
        syncs with ``check=False`` (see :func:`~matbackprop.nn.functional.second_order_pooling`).
        """
        features = check_features(features)
        if self.in_channels is not None and features.shape[1] != self.in_channels:
            raise ValueError(
                f"`features` must have {self.in_channels} channels (in_channels), got shape "
                f"{tuple(features.shape)}"
            )
        if self.reduce is not None:
            features = self.reduce(features)
        return second_order_pooling(features, masks, max_support=max_support, options=self.options)

    def extra_repr(self) -> str:
        parts = options_repr(self.options, first="normalization")
        if self.in_channels is not None:
            parts.append(f"in_channels={self.in_channels}")
        if self.reduce_dim is not None:
            parts.append(f"reduce_dim={self.reduce_dim}")
        return ", ".join(parts)
