"""Segment image files with a trained model: ``matbackprop segment``.

Per input image ``<stem>`` the output folder gets

- ``<stem>.mat``: the BSDS result format (:func:`matbackprop.data.save_bsds_result`): ``segs``,
  a ``1 × L`` cell of ``uint16`` label maps at the input's full resolution, coarse to fine, and
  ``ucm2`` when the model builds one;
- ``<stem>.png``: the default level as a 16-bit label image (labels ``1 .. R``);
- ``<stem>_overlay.png``: the default level's boundaries over the image.

Each file is written to a temporary name in the output folder and renamed into place, so an
interruption or a bad input never leaves a partial file, and outputs already written stay.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from matbackprop.data import read_rgb_image, save_bsds_result
from matbackprop.errors import DataFileError

from . import get_task
from ._figures import boundary_overlay
from ._segmentation import Segmentation

__all__ = ["IMAGE_SUFFIXES", "SegmentSummary", "find_images", "segment_image", "segment_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class SegmentSummary:
    """What :func:`segment_images` did: outputs per image, skipped files, wall time.

    Examples
    --------
    >>> from pathlib import Path
    >>> from matbackprop.tasks import SegmentSummary
    >>> summary = SegmentSummary({"a.jpg": [Path("out/a.mat")]}, seconds=2.0)
    >>> summary.line(Path("out"))
    'segmented 1 image in 2.0 s, 2.00 s/image -> out'
    """

    written: dict[str, list[Path]] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def line(self, out_dir: Path) -> str:
        """The one-line summary the command prints."""
        n = len(self.written)
        per = f", {self.seconds / n:.2f} s/image" if n else ""
        text = f"segmented {n} image{'s' * (n != 1)} in {self.seconds:.1f} s{per} -> {out_dir}"
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + ", ".join(
                f"{p} ({reason})" for p, reason in self.skipped
            )
        return text


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files named by ``inputs``: files as given, folders' JPEG/PNG files (sorted,
    not recursive).

    Raises
    ------
    FileNotFoundError
        For an input that does not exist.
    ValueError
        For a folder without images, or two inputs whose outputs would share a name.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for name in ("b.png", "a.JPG", "notes.txt"):
    ...         _ = (Path(d) / name).write_bytes(b"")
    ...     [p.name for p in find_images([d])]
    ['a.JPG', 'b.png']
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not images:
                raise ValueError(f"{path}: no {'/'.join(IMAGE_SUFFIXES)} files in this folder")
            found += images
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    stems: dict[str, Path] = {}
    for path in found:
        if path.stem in stems and stems[path.stem].resolve() != path.resolve():
            raise ValueError(
                f"{stems[path.stem]} and {path} would write the same outputs ({path.stem}.*); "
                "segment them into different --out folders"
            )
        stems[path.stem] = path
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix), renamed to ``path`` on success."""
    # not mkstemp: the writer creates the file, so it gets the user's usual permissions
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def segment_image(
    model: torch.nn.Module, image: torch.Tensor, *, max_size: int | None = None
) -> Segmentation:
    """Segment one RGB image ``(3, H, W)`` in ``[0, 1]`` with a model from
    :func:`~matbackprop.tasks.load_pretrained` or :func:`~matbackprop.tasks.load_trained`:
    its task's ``segment`` with the node settings the model was trained with.

    ``max_size``: the network and the superpixels see the image shrunk to this long side (if
    larger); the outputs stay at ``(H, W)``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.tasks import load_pretrained
    >>> model = load_pretrained("deepncuts-bsds500")
    >>> result = segment_image(model, torch.rand(3, 60, 90))
    >>> tuple(result.ucm2.shape), tuple(result.levels[0].shape)
    ((121, 181), (60, 90))
    """
    info = getattr(model, "pretrained_info", None)
    if info is None:
        raise ValueError(
            "`model` has no `pretrained_info`: load it with matbackprop.tasks.load_pretrained "
            "or load_trained"
        )
    task = get_task(info.task)
    if not hasattr(task, "segment"):
        raise ValueError(f"task {info.task!r} cannot segment images (it has no `segment`)")
    if max_size is not None and (isinstance(max_size, bool) or int(max_size) < 16):
        raise ValueError(f"`max_size` must be an int >= 16, got {max_size!r}")
    return task.segment(info.config, model, image, max_size=max_size)


def _write(path: Path, image: torch.Tensor, result: Segmentation, level: int) -> list[Path]:
    from PIL import Image

    stem, out = path.stem, path.parent
    mat, png, overlay = out / f"{stem}.mat", out / f"{stem}.png", out / f"{stem}_overlay.png"
    with _atomic_path(mat) as tmp:
        save_bsds_result(tmp, segs=result.levels, ucm2=result.ucm2)
    labels = result.levels[level]
    _, contiguous = np.unique(labels.numpy(), return_inverse=True)
    with _atomic_path(png) as tmp:
        label_png = (contiguous.reshape(labels.shape) + 1).astype(np.uint16)
        Image.fromarray(label_png).save(tmp, format="PNG")
    with _atomic_path(overlay) as tmp:
        Image.fromarray(boundary_overlay(image, labels)).save(tmp, format="PNG")
    return [mat, png, overlay]


def segment_images(
    model: torch.nn.Module,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    threshold: float | None = None,
    max_size: int | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> SegmentSummary:
    """Segment every image of ``inputs`` (files and folders) into ``out_dir``.

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`~matbackprop.tasks.load_pretrained` or :func:`~matbackprop.tasks.load_trained`.
    inputs : sequence of str or Path
        Image files and/or folders of JPEG/PNG files.
    out_dir : str or Path
        Created if needed; see the module docstring for what goes in.
    threshold : float, optional
        The ``ucm2`` threshold of the level of ``<stem>.png`` and the overlay; default the
        model's ``default_threshold`` (its validation ODS), else the middle level.
    max_size : int, optional
        Long side the network sees (see :func:`segment_image`); default: the full image.
    skip_bad : bool
        Skip unreadable images (listed in the summary) instead of stopping at the first.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).

    Returns
    -------
    SegmentSummary

    Raises
    ------
    matbackprop.errors.DataFileError
        Naming an unreadable image (without ``skip_bad``); the outputs of the images before it
        are kept.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> from matbackprop.tasks import load_pretrained
    >>> model = load_pretrained()
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Image.new("RGB", (64, 48), "teal").save(f"{d}/flat.png")
    ...     summary = segment_images(model, [f"{d}/flat.png"], f"{d}/out", progress=False)
    ...     sorted(p.name for p in summary.written["flat.png"])
    ['flat.mat', 'flat.png', 'flat_overlay.png']
    """
    images = find_images(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info: Any = getattr(model, "pretrained_info", None)
    if threshold is None and info is not None:
        threshold = info.default_threshold
    summary = SegmentSummary()
    start = time.perf_counter()
    bar = tqdm(
        images,
        desc="segment",
        unit="image",
        disable=None if progress is None else not progress,
        file=sys.stderr,
    )
    for path in bar:
        try:
            image = read_rgb_image(path)
        except DataFileError as error:
            if not skip_bad:
                done = len(summary.written)
                raise DataFileError(
                    path,
                    f"{error.reason} (outputs of the {done} image{'s' * (done != 1)} before it "
                    f"are in {out_dir}; --skip-bad skips such files)",
                ) from None
            summary.skipped.append((path, error.reason))
            continue
        result = segment_image(model, image, max_size=max_size)
        level = result.level_at(threshold)
        summary.written[path.name] = _write(out_dir / path.name, image, result, level)
    summary.seconds = time.perf_counter() - start
    return summary
