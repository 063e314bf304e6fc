"""Pictures of segmentations (Pillow only): image | ground truth | methods, a row per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor


def _palette(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 230, size=(max(n, 1), 3), dtype=np.uint8)


def colorize(labels: Tensor, image: Tensor | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8: each segment a colour (mixed with the image if given), boundaries
    in white."""
    lab = labels.cpu().numpy().astype(np.int64)
    _, inverse = np.unique(lab, return_inverse=True)
    inverse = inverse.reshape(lab.shape)
    rgb = _palette(int(inverse.max()) + 1)[inverse].astype(np.float32)
    if image is not None:
        rgb = 0.55 * rgb + 0.45 * 255 * image.permute(1, 2, 0).cpu().numpy()
    edge = np.zeros(lab.shape, dtype=bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    rgb[edge] = 255
    return rgb.clip(0, 255).astype(np.uint8)


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
            im = Image.fromarray(tile).resize((w, h), Image.NEAREST)
            canvas.paste(im, (pad + c * (w + pad), header + pad + r * (h + pad)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


__all__ = ["colorize", "save_segmentation_figure"]
