"""Input checks shared by the normalized-cuts layer, loss and decoders.

Every check raises :class:`ValueError` whose message names the argument, what was expected and
what came. Value checks (finiteness, sign, symmetry) synchronise with the host once each.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float32, torch.float64)
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def require_tensor(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_float(x: Tensor, name: str) -> None:
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"`{name}` must have dtype float32 or float64, got {x.dtype}")


def check_int(x: Tensor, name: str) -> None:
    if x.dtype not in INT_DTYPES:
        raise ValueError(f"`{name}` must have an integer dtype, got {x.dtype}")


def check_ndim(x: Tensor, name: str, ndim: int, want: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"`{name}` must have shape {want}, got {tuple(x.shape)}")


def check_nonempty(x: Tensor, name: str, want: str) -> None:
    if any(size == 0 for size in x.shape):
        raise ValueError(f"`{name}` must have non-empty dimensions {want}, got {tuple(x.shape)}")


def check_finite(x: Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"`{name}` must be finite, got {bad} non-finite entries (NaN or inf)")


def check_nonnegative(x: Tensor, name: str, remedy: str = "") -> None:
    smallest = x.min()
    if bool(smallest < 0):
        raise ValueError(
            f"`{name}` must be non-negative, got minimum {float(smallest):.3g}{remedy}"
        )


def check_symmetric(W: Tensor, name: str) -> None:
    """``max|W − Wᵀ| <= sqrt(eps) · max|W|`` per matrix."""
    rtol = float(torch.finfo(W.dtype).eps) ** 0.5
    scale = W.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(W.dtype).tiny)
    rel = ((W - W.mT).abs().amax(dim=(-2, -1)) / scale).max()
    if bool(rel > rtol):
        raise ValueError(
            f"`{name}` must be symmetric: max|W - Wᵀ| / max|W| = {float(rel):.3g} exceeds "
            f"{rtol:.3g}; symmetrize it with (W + W.mT) / 2 if the asymmetry is rounding error"
        )


def check_choice(value: object, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        listed = " | ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {listed}, got {value!r}")


def check_nonnegative_float(value: object, name: str, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = value > 0 if positive else value >= 0
        ok = ok and value != float("inf")
    if not ok:
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"`{name}` must be a finite {kind} number, got {value!r}")
    return float(value)


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return value


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
        check_int(k, "k")
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
