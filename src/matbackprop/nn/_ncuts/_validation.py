"""The per-image number of eigenvectors ``k``, shared by the layer, the loss and the decoders.

Generic checks (tensors, dtypes, shapes, options) are in :mod:`matbackprop.validation`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from matbackprop.validation import check_int_dtype


def resolve_k(k: object, batch: int, k_max: int, device: torch.device, why: str) -> Tensor:
    """Per-image ``k`` as a long tensor ``(B,)`` on ``device``, each in ``[1, k_max]``.

    ``k`` may be an int (same for all images), a sequence of ints or a 1-D integer tensor of
    length ``B``. ``why`` explains where ``k_max`` comes from (for the error message).
    """
    if k is None:
        raise ValueError(
            "`k` must be given (an int or one int per image), got None; e.g. "
            "k=segment_counts(labels) for the number of ground-truth segments"
        )
    if isinstance(k, bool):
        raise ValueError(f"`k` must be an int or a sequence/tensor of ints, got {k!r}")
    if isinstance(k, int):
        values = torch.full((batch,), k, dtype=torch.long)
    elif isinstance(k, Tensor):
        if k.ndim == 0:
            k = k.reshape(1).expand(batch)
        if k.ndim != 1 or k.shape[0] != batch:
            raise ValueError(
                f"`k` must have shape ({batch},) (one per image), got {tuple(k.shape)}"
            )
        check_int_dtype(k, "k")
        values = k.detach().to("cpu", torch.long)
    elif isinstance(k, Sequence) and all(isinstance(v, int) and not isinstance(v, bool) for v in k):
        if len(k) != batch:
            raise ValueError(f"`k` must have {batch} entries (one per image), got {len(k)}")
        values = torch.tensor(list(k), dtype=torch.long)
    else:
        raise ValueError(f"`k` must be an int or a sequence/tensor of ints, got {k!r}")
    if bool((values < 1).any()):
        raise ValueError(f"`k` must be >= 1, got {values.tolist()}")
    if bool((values > k_max).any()):
        raise ValueError(f"`k` must be <= {k_max} ({why}), got {values.tolist()}")
    return values.to(device)
