"""Reading image files into float tensors, failing loudly on bad files."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from matbackprop.errors import DataFileError

__all__ = ["read_rgb_image"]

_TRUNCATION_LOCK = threading.Lock()


def read_rgb_image(path: str | Path) -> torch.Tensor:
    """Read an image file as an RGB float32 tensor in ``[0, 1]``.

    Parameters
    ----------
    path : str or pathlib.Path
        Image file (any format Pillow reads; grey-scale and palette images are converted to RGB).

    Returns
    -------
    torch.Tensor
        ``(3, H, W)`` float32, values ``k / 255``.

    Raises
    ------
    DataFileError
        If the file is missing, not an image, truncated or otherwise undecodable. The message
        names the file.

    Notes
    -----
    The whole file is decoded (``Image.load``) with Pillow's ``LOAD_TRUNCATED_IMAGES`` forced off
    for the duration of the call, so a truncated JPEG raises instead of being padded with grey.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from matbackprop.data import read_rgb_image
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "grey.png"
    >>> Image.new("L", (5, 3), 255).save(path)                 # greyscale: converted to RGB
    >>> image = read_rgb_image(path)
    >>> image.shape, image.dtype, float(image.max())
    (torch.Size([3, 3, 5]), torch.float32, 1.0)
    >>> tmp.cleanup()
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "image file not found")
    try:
        with _TRUNCATION_LOCK:
            previous = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                with Image.open(path) as img:
                    img.load()
                    rgb = img.convert("RGB")
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = previous
    except UnidentifiedImageError as exc:
        raise DataFileError(path, f"not a readable image ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataFileError(path, f"corrupt or truncated image ({exc})") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataFileError(path, f"decoded to an unexpected array shape {array.shape}")
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    return tensor.to(torch.float32).div_(255.0)
