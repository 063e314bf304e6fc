"""The per-image number of eigenvectors ``k``, shared by the layer, the loss and the decoders.

Generic checks (tensors, dtypes, shapes, options) are in :mod:`matbackprop.validation`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from matbackprop.validation import check_int_dtype


def resolve_k(
    k: object,
    batch: int,
    k_max: int,
    device: torch.device,
    why: str,
    *,
    columns: int | None = None,
    check: bool = True,
) -> tuple[Tensor, int]:
    """Per-image ``k`` as a long tensor ``(B,)`` on ``device``, and the column count ``K``.

    ``k`` may be an int (same for all images), a sequence of ints or a 1-D integer tensor of
    length ``B``; each must lie in ``[1, k_max]`` (``why`` explains ``k_max`` in the message).
    ``K = max(k)`` must be known on the host: for an int or a sequence it is; for a tensor it is
    ``columns`` when given (an upper bound the caller knows, e.g. ``num_segments``), else
    ``int(k.max())``, one host sync. With ``check=False`` a tensor ``k`` is not range-checked
    (no host sync); values above ``K`` then use all ``K`` columns.
    """
    if k is None:
        raise ValueError(
            "`k` must be given (an int or one int per image), got None; e.g. "
            "k=segment_counts(labels) for the number of ground-truth segments"
        )
    if isinstance(k, bool):
        raise ValueError(f"`k` must be an int or a sequence/tensor of ints, got {k!r}")
    if isinstance(k, int):
        _check_range([k] * batch, k_max, why)
        return torch.full((batch,), k, dtype=torch.long, device=device), k
    if isinstance(k, Tensor):
        if k.ndim == 0:
            k = k.reshape(1).expand(batch)
        if k.ndim != 1 or k.shape[0] != batch:
            raise ValueError(
                f"`k` must have shape ({batch},) (one per image), got {tuple(k.shape)}"
            )
        check_int_dtype(k, "k")
        values = k.detach().to(device, torch.long)
        if check:
            listed = values.tolist()
            _check_range(listed, k_max, why)
            if columns is not None and max(listed) > columns:
                raise ValueError(
                    f"`k` must be <= num_segments = {columns} (the bound passed), got {listed}"
                )
        K = min(columns, k_max) if columns is not None else int(values.max())
        return values, K
    if isinstance(k, Sequence) and all(isinstance(v, int) and not isinstance(v, bool) for v in k):
        if len(k) != batch:
            raise ValueError(f"`k` must have {batch} entries (one per image), got {len(k)}")
        _check_range(list(k), k_max, why)
        return torch.tensor(list(k), dtype=torch.long).to(device), max(k)
    raise ValueError(f"`k` must be an int or a sequence/tensor of ints, got {k!r}")


def _check_range(values: list[int], k_max: int, why: str) -> None:
    if any(v < 1 for v in values):
        raise ValueError(f"`k` must be >= 1, got {values}")
    if any(v > k_max for v in values):
        raise ValueError(f"`k` must be <= {k_max} ({why}), got {values}")


def check_num_segments(num_segments: object) -> int | None:
    """``num_segments``: None or a positive int (the number of label values, known on the host)."""
    if num_segments is None:
        return None
    if isinstance(num_segments, bool) or not isinstance(num_segments, int) or num_segments < 1:
        raise ValueError(f"`num_segments` must be a positive int or None, got {num_segments!r}")
    return num_segments
