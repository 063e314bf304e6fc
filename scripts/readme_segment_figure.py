"""The README's `segment` picture: the shipped DeepNCuts weights on an image that is not in
BSDS500 (scikit-image's bundled ``chelsea.png``, no download).

    OMP_NUM_THREADS=2 python scripts/readme_segment_figure.py [--out PNG]

Panels: the image | boundaries of the default level (the weights' validation ODS threshold)
over it | the ucm2 (darker: stronger boundary). The same outputs as
``matbackprop segment <skimage>/data/chelsea.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from matbackprop.data import read_rgb_image
from matbackprop.tasks import load_pretrained, segment_image
from matbackprop.tasks._figures import boundary_overlay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/segment_chelsea.png"))
    parser.add_argument("--width", type=int, default=300, help="width of each panel")
    args = parser.parse_args()
    source = Path(skimage.data.__file__).parent / "chelsea.png"
    image = read_rgb_image(source)
    model = load_pretrained("deepncuts-bsds500")
    start = time.perf_counter()
    result = segment_image(model, image)
    seconds = time.perf_counter() - start
    level = result.levels[result.level_at(model.pretrained_info.default_threshold)]
    overlay = boundary_overlay(image, level)
    # boundary strength of each pixel: the largest ucm2 value on its right/lower edges
    u = result.ucm2.numpy()
    strength = np.maximum(u[1::2, 2::2], u[2::2, 1::2])
    strength = (255 * (1 - strength / max(float(strength.max()), 1e-12))).astype(np.uint8)
    panels = [
        (255 * image.permute(1, 2, 0).numpy() + 0.5).astype(np.uint8),
        overlay,
        np.repeat(strength[..., None], 3, axis=2),
    ]
    h, w = level.shape
    size = (args.width, round(h * args.width / w))
    row = np.concatenate(
        [np.asarray(Image.fromarray(p).resize(size, Image.Resampling.LANCZOS)) for p in panels],
        axis=1,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the committed PNG small
    Image.fromarray(row).quantize(256).save(args.out, optimize=True)
    regions = int(level.max()) + 1
    print(
        f"{source.name} {w}x{h}: {len(result.levels)} levels, default level {regions} regions, "
        f"segment_image {seconds:.1f} s -> {args.out}"
    )


if __name__ == "__main__":
    main()
