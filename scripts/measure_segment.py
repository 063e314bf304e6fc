"""Seconds per image of ``matbackprop segment``'s steps with the shipped weights.

    OMP_NUM_THREADS=1 python scripts/measure_segment.py [IMAGE_OR_FOLDER ...] [--limit 4]

Default images: the first ``--limit`` BSDS500 val images (481×321). Prints, per image, SLIC,
descriptors and head (Lite0 taps pooled per superpixel, of the image and of its mirror when the
model's ``views`` is 2), NCuts, merging into the ucm2, its levels,
and the whole of :func:`matbackprop.tasks.segment_image`.
"""

from __future__ import annotations

import argparse
import time

import torch

from matbackprop.data import default_bsds_root, read_rgb_image
from matbackprop.nn.functional import ucm2_levels
from matbackprop.tasks import find_images, load_pretrained, segment_image
from matbackprop.tasks._segmentation import quiet_eigengaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*")
    parser.add_argument("--limit", type=int, default=4)
    args = parser.parse_args()
    inputs = args.inputs or [default_bsds_root() / "data" / "images" / "val"]
    model = load_pretrained()
    config = model.pretrained_info.config
    print(f"torch threads {torch.get_num_threads()}")
    for path in find_images(inputs)[: args.limit]:
        image = read_rgb_image(path)
        times = {}
        start = time.perf_counter()
        index = config.nodes.node_index(image)
        times["slic"] = time.perf_counter() - start
        with torch.no_grad(), quiet_eigengaps():
            start = time.perf_counter()
            features = model.node_features(image, index)
            times["descriptors+head"] = time.perf_counter() - start
            start = time.perf_counter()
            Z = model.embed(features).Z[0].cpu()
            times["ncuts"] = time.perf_counter() - start
        start = time.perf_counter()
        u = model.decoder.ucm2(Z, index)
        times["ucm2"] = time.perf_counter() - start
        start = time.perf_counter()
        ucm2_levels(u)
        times["levels"] = time.perf_counter() - start
        start = time.perf_counter()
        segment_image(model, image)
        times["segment_image"] = time.perf_counter() - start
        h, w = image.shape[-2:]
        cells = "  ".join(f"{k} {v:.3f}" for k, v in times.items())
        print(f"{path.name} {w}x{h}: {cells}")


if __name__ == "__main__":
    main()
