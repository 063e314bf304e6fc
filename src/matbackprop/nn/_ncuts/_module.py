"""The normalized-cuts layer as a module: :class:`NormalizedCuts`."""

from __future__ import annotations

from torch import Tensor, nn

from matbackprop.validation import check_int, require_tensor

from .._options import options_repr
from ._layer import normalized_cuts, normalized_cuts_affinity
from ._loss import segment_counts
from ._options import AFFINITY_OPTIONS, NCutsOptions
from ._result import NCutsResult


class NormalizedCuts(nn.Module):
    """Normalized-cuts layer (Ionescu et al. 2015, Sec. 5): features → spectral embedding.

    ``W = φ(F)φ(F)ᵀ`` (or a given affinity), ``M = D̃^-½ W D̃^-½``, output the top-``k``
    eigenvectors with their eigenvalues and the degrees. No parameters; the gradient w.r.t.
    the input is the paper's matrix backpropagation (via :mod:`matbackprop.linalg`).

    Parameters
    ----------
    k : int, optional
        Default number of eigenvectors when ``forward`` gets neither ``k`` nor ``labels``.
    options : NCutsOptions, optional
        All options at once (``**overrides`` replace fields).
    **overrides
        Options by name: route (``"lowrank"`` default, input ``F (B, m, d)``, never forms
        ``m × m``; ``"dense"``, input ``F``, forms ``W = FFᵀ``; ``"affinity"``, input
        ``W (B, m, m)``), nonneg, degree_floor, degree_floor_abs, solver, eigengap_rtol,
        check_eigengap, strict, policy, check -- see :class:`~matbackprop.nn.NCutsOptions`.

    Attributes
    ----------
    options : NCutsOptions
        The validated options, shared with the functional forms.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn import NormalizedCuts
    >>> from matbackprop.nn.functional import ncuts_loss
    >>> F = torch.rand(2, 100, 16, dtype=torch.float64, requires_grad=True)
    >>> labels = torch.randint(0, 3, (2, 100))
    >>> result = NormalizedCuts()(F, labels=labels)   # k = segments per image
    >>> loss = ncuts_loss(result, labels)
    >>> loss.backward()
    """

    def __init__(
        self, k: int | None = None, *, options: NCutsOptions | None = None, **overrides
    ) -> None:
        super().__init__()
        self.options = NCutsOptions.resolve(options, overrides)
        self.k = check_int(k, "k", allow_none=True)

    def forward(
        self,
        x: Tensor,
        k: int | Tensor | list[int] | None = None,
        *,
        labels: Tensor | None = None,
        ignore_index: int | None = None,
        num_segments: int | None = None,
    ) -> NCutsResult:
        """Embed ``x`` (features ``(B, m, d)`` or, for ``route="affinity"``, ``W (B, m, m)``).

        Parameters
        ----------
        x : Tensor, shape (B, m, d) or (B, m, m)
            Node features (routes ``"lowrank"``/``"dense"``) or the affinity (``"affinity"``).
        k : int or sequence / tensor of length B, optional
            Eigenvectors per image. Default: the number of segments of ``labels`` per image,
            else the module's ``k``.
        labels : Tensor, shape (B, m), optional
            Ground-truth labels, used only to infer ``k`` (see :func:`segment_counts`).
        ignore_index : int, optional
            Label not counted as a segment when inferring ``k``.
        num_segments : int, optional
            The number of label values (labels in ``[0, num_segments)``), known on the host:
            ``Z`` gets ``min(num_segments, m, d)`` columns and ``k`` is inferred without a host
            sync (pass the same value to :func:`~matbackprop.nn.functional.ncuts_loss`). With
            ``check=False`` and ``check_eigengap=False`` the layer then makes none at all.

        Returns
        -------
        NCutsResult

        Raises
        ------
        ValueError
            As :func:`normalized_cuts` / :func:`normalized_cuts_affinity`; also when ``labels``
            does not have shape ``(B, m)`` or no ``k`` is available.
        """
        if k is None and labels is not None:
            k = segment_counts(
                labels, ignore_index, num_segments=num_segments, check=self.options.check
            )
            x = require_tensor(x, "x")
            if x.ndim >= 2 and labels.shape != x.shape[:2]:
                raise ValueError(
                    f"`labels` must have shape (B, m) = {tuple(x.shape[:2])}, got "
                    f"{tuple(labels.shape)}"
                )
        if k is None:
            k = self.k
        if self.options.route == "affinity":
            graph = {name: getattr(self.options, name) for name in AFFINITY_OPTIONS}
            return normalized_cuts_affinity(x, k, num_segments=num_segments, **graph)
        return normalized_cuts(x, k, num_segments=num_segments, options=self.options)

    def extra_repr(self) -> str:
        return ", ".join([f"k={self.k}", *options_repr(self.options, first="route")])
