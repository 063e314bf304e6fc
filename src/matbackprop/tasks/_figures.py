"""The pictures tasks write (Pillow): segmentations and region predictions, a row per image.

- :func:`save_segmentation_figure`: columns ``image | ground truth | method ...``;
- :func:`save_ucm_figure`: columns ``image | human | per method: its ucm2, its level at a
  threshold``;
- :func:`save_region_figure`: columns = methods; each cell the image with its region outlines
  and numbers, and under it the true and predicted class of each region.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "boundary_overlay",
    "colorize",
    "readable_region_items",
    "save_region_figure",
    "save_segmentation_figure",
    "save_ucm_figure",
]


def _palette(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 230, size=(max(n, 1), 3), dtype=np.uint8)


def colorize(labels: Tensor, image: Tensor | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8: each segment a colour (mixed with the image if given), boundaries
    in white."""
    lab = labels.cpu().numpy().astype(np.int64)
    _, inverse = np.unique(lab, return_inverse=True)
    inverse = inverse.reshape(lab.shape)
    rgb: np.ndarray = _palette(int(inverse.max()) + 1)[inverse].astype(np.float32)
    if image is not None:
        rgb = 0.55 * rgb + 0.45 * 255 * image.permute(1, 2, 0).cpu().numpy()
    edge = np.zeros(lab.shape, dtype=bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    rgb[edge] = 255
    return rgb.clip(0, 255).astype(np.uint8)


def boundary_overlay(
    image: Tensor, labels: Tensor, color: tuple[int, int, int] = (255, 230, 0)
) -> np.ndarray:
    """``(H, W, 3)`` uint8: the image ``(3, H, W)`` in ``[0, 1]`` with the boundaries of the label
    map ``(H, W)`` painted in ``color`` (the pixels on both sides of every label change)."""
    lab = labels.cpu().numpy()
    rgb = (255 * image.permute(1, 2, 0).clamp(0, 1).cpu().numpy() + 0.5).astype(np.uint8)
    down, right = lab[:-1] != lab[1:], lab[:, :-1] != lab[:, 1:]
    edge = np.zeros(lab.shape, dtype=bool)
    edge[:-1] |= down
    edge[1:] |= down
    edge[:, :-1] |= right
    edge[:, 1:] |= right
    rgb[edge] = color
    return rgb


def save_segmentation_figure(
    path: Path,
    images: Sequence[Tensor],
    ground_truths: Sequence[Tensor],
    methods: dict[str, Sequence[Tensor]],
    *,
    scale: int = 2,
) -> Path:
    """Write a grid: columns ``image | ground truth | method …``, one row per image."""
    from PIL import Image, ImageDraw

    columns = ["image", "ground truth", *methods]
    tiles = []
    for i, image in enumerate(images):
        row = [(255 * image.permute(1, 2, 0).clamp(0, 1).cpu().numpy()).astype(np.uint8)]
        row.append(colorize(ground_truths[i]))
        row += [colorize(methods[name][i], image) for name in methods]
        tiles.append(row)
    h, w = tiles[0][0].shape[:2]
    h, w = h * scale, w * scale
    header = 16
    pad = 4
    canvas = Image.new(
        "RGB", (len(columns) * (w + pad) + pad, header + len(tiles) * (h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(columns):
        draw.text((pad + c * (w + pad), 2), name, fill="black")
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            im = Image.fromarray(tile).resize((w, h), Image.Resampling.NEAREST)
            canvas.paste(im, (pad + c * (w + pad), header + pad + r * (h + pad)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _ucm_tile(ucm2: Tensor) -> np.ndarray:
    """Boundary strengths of a ``ucm2`` at pixel resolution, dark on white (``(H, W, 3)``)."""
    u = ucm2.detach().cpu().to(torch.float64)
    # each pixel shows the strongest boundary element to its right or below
    right = u[1:-1:2, 2::2]
    below = u[2::2, 1:-1:2]
    strength = torch.maximum(right, below).numpy()
    gray = (255 * (1 - strength.clip(0, 1)) ** 1.5).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def save_ucm_figure(
    path: Path,
    images: Sequence[Tensor],
    ground_truths: Sequence[Tensor],
    ucms: dict[str, Sequence[Tensor]],
    thresholds: dict[str, float],
    *,
    scale: float = 0.5,
) -> Path:
    """Write a grid, one row per image: the image, a human segmentation, and for each method
    its ucm2 (boundary strength, darker = stronger) and its segmentation at ``thresholds[m]``
    (e.g. the ODS threshold) over the image. Portrait images are transposed to landscape so
    that every tile has one size."""
    from PIL import Image, ImageDraw

    from matbackprop.nn.functional import ucm2_segmentation

    columns = ["image", "human"]
    for name in ucms:
        columns += [f"{name} ucm", f"{name} t={thresholds[name]:.2f}"]
    rows = []
    for i, image in enumerate(images):
        row = [
            (255 * image.permute(1, 2, 0).clamp(0, 1).cpu().numpy()).astype(np.uint8),
            colorize(ground_truths[i]),
        ]
        for name, maps in ucms.items():
            row.append(_ucm_tile(maps[i]))
            row.append(colorize(ucm2_segmentation(maps[i], thresholds[name]), image))
        if row[0].shape[0] > row[0].shape[1]:
            row = [np.ascontiguousarray(t.transpose(1, 0, 2)) for t in row]
        rows.append(row)
    if not rows:
        raise ValueError("`images` must hold at least one image")
    h, w = (max(1, round(n * scale)) for n in rows[0][0].shape[:2])
    header, pad = 16, 4
    canvas = Image.new(
        "RGB", (len(columns) * (w + pad) + pad, header + len(rows) * (h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(columns):
        draw.text((pad + c * (w + pad), 2), name[: max(8, w // 6)], fill="black")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            im = Image.fromarray(tile).resize((w, h), Image.Resampling.BILINEAR)
            canvas.paste(im, (pad + c * (w + pad), header + pad + r * (h + pad)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
)  # fmt: skip


def readable_region_items(dataset: Any, count: int) -> list[int]:
    """The first ``count`` items with 2 to 8 regions (readable), topped up with the first
    remaining ones (``dataset``: a :class:`~matbackprop.data.RegionItems`)."""
    if count == 0:
        return []
    chosen = []
    for i in range(len(dataset)):
        if 2 <= dataset.sample(i).num_regions <= 8:
            chosen.append(i)
            if len(chosen) == count:
                return chosen
    rest = [i for i in range(len(dataset)) if i not in chosen]
    return sorted(chosen + rest[: count - len(chosen)])


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _outline(mask: torch.Tensor) -> torch.Tensor:
    """Pixels of ``mask`` within 1 px of its boundary."""
    m = mask.float()[None, None]
    eroded = -F.max_pool2d(-m, 5, stride=1, padding=2)
    return (mask & ~(eroded[0, 0] > 0.5)).bool()


def save_region_figure(
    path: Path,
    dataset: Any,
    items: list[int],
    predictions: dict[str, list[torch.Tensor]],
    scores: dict[str, Any],
    split: str,
) -> Path:
    """Grid of images (rows) x methods (columns): region outlines, numbers, true/pred names.

    ``dataset`` is a :class:`~matbackprop.data.RegionItems`; ``predictions[method][r]`` the
    predicted classes of the regions of item ``items[r]``; ``scores[method]`` its
    ``accuracy`` and ``mean_class_accuracy`` (in the column title).
    """
    from PIL import Image, ImageDraw

    names = dataset.category_names
    methods = list(predictions)
    samples = [dataset.sample(i) for i in items]
    font, small = _font(14), _font(11)
    line = 13
    cell_w = max(int(s.image.shape[-1]) for s in samples)
    row_heights = [
        int(s.image.shape[-2]) + 6 + line * (min(s.num_regions, 12) + (s.num_regions > 12))
        for s in samples
    ]
    header = 40
    pad = 8
    width = pad + len(methods) * (cell_w + pad)
    height = header + sum(h + pad for h in row_heights)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, method in enumerate(methods):
        x = pad + c * (cell_w + pad)
        s = scores[method]
        draw.text((x, 4), method, fill=(0, 0, 0), font=font)
        draw.text(
            (x, 22),
            f"{split}: acc {s['accuracy']:.3f}, mean class acc {s['mean_class_accuracy']:.3f}",
            fill=(60, 60, 60),
            font=small,
        )
    for r, sample in enumerate(samples):
        y = header + sum(h + pad for h in row_heights[:r])
        img_h = int(sample.image.shape[-2])
        rgb = (sample.image.clamp(0, 1) * 255).round().to(torch.uint8)  # (3, H, W)
        overlay = rgb.permute(1, 2, 0).clone()
        for k in range(sample.num_regions):
            color = torch.tensor(_PALETTE[k % len(_PALETTE)], dtype=torch.uint8)
            overlay[_outline(sample.masks[k])] = color
        base_image = Image.fromarray(overlay.numpy())
        for c, method in enumerate(methods):
            x = pad + c * (cell_w + pad)
            canvas.paste(base_image, (x, y))
            preds = predictions[method][r].tolist()
            for k in range(sample.num_regions):
                ys, xs = torch.nonzero(sample.masks[k], as_tuple=True)
                cy, cx = int(ys.float().median()), int(xs.float().median())
                draw.rectangle((x + cx - 2, y + cy - 7, x + cx + 14, y + cy + 7), fill=(0, 0, 0))
                draw.text(
                    (x + cx, y + cy - 6), str(k + 1), fill=_PALETTE[k % len(_PALETTE)], font=small
                )
            for k in range(min(sample.num_regions, 12)):
                true, pred = int(sample.labels[k]), preds[k]
                ok = true == pred
                text = f"{k + 1}: {names[true]}" + ("" if ok else f" -> {names[pred]}")
                draw.text(
                    (x, y + img_h + 4 + k * line),
                    ("ok " if ok else "XX ") + text,
                    fill=(0, 120, 0) if ok else (200, 0, 0),
                    font=small,
                )
            if sample.num_regions > 12:
                draw.text(
                    (x, y + img_h + 4 + 12 * line),
                    f"... {sample.num_regions - 12} more regions",
                    fill=(90, 90, 90),
                    font=small,
                )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
