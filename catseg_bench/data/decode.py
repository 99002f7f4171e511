"""Decode images and label maps the way the MESS evaluation reads them.

Images follow detectron2's ``read_image(path, format="RGB")``: EXIF orientation applied, then every
mode converted to RGB (alpha dropped, palette expanded, grayscale replicated). 16-bit grayscale,
which detectron2 would clip at 255, is scaled to 8 bits instead (value / 257), so a user's 16-bit
thermal or X-ray images keep their contrast; no MESS dataset ships 16-bit images.

Labels follow the MESS evaluator's ``np.array(Image.open(path))``: no EXIF, no conversion; a label
must be a single-channel index image (uint8, or 16-bit for more than 255 classes).

A *source* is a file path or the file's bytes (a Hugging Face export stores the original bytes);
``where`` names the file in error messages.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from catseg_bench.errors import BenchError

Source = Path | bytes

_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

# The largest image any command opens: MESS's biggest sources are iSAID's (DOTA) aerial scenes, up to
# 20,000 x 20,000 pixels, which `bench prepare` tiles. PIL's own guard (a warning above 89 MP, an
# error above 179 MP) would stop them; beyond this limit an image is refused with one line.
MAX_IMAGE_PIXELS = 20_000 * 20_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def open_image(source: Source, where: str) -> Image.Image:
    """Open lazily (header only); a file PIL cannot identify, or one larger than MAX_IMAGE_PIXELS,
    is a BenchError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except FileNotFoundError:
        raise BenchError(f"{where}: file not found; re-run the preparation or fix --data-root") from None
    except Image.DecompressionBombError:
        raise BenchError(f"{where}: image has more than twice {MAX_IMAGE_PIXELS:,} pixels; split it into tiles") from None
    except _DECODE_ERRORS as err:
        raise BenchError(f"{where}: not a readable image ({err}); re-download or re-prepare this file") from None
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        img.close()
        raise BenchError(
            f"{where}: image is {width}x{height} = {width * height:,} pixels, more than the {MAX_IMAGE_PIXELS:,} "
            "this tool opens (the largest MESS source); split it into tiles"
        )
    return img


def _orientation(img: Image.Image) -> int:
    """EXIF orientation from the header, without decoding pixels (PNG keeps EXIF in an eXIf chunk)."""
    try:
        if img.format == "PNG":
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = img.getexif()
        value = exif.get(_EXIF_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1
    return value if value in _TRANSPOSE_FOR_ORIENTATION else 1


def image_size(source: Source, where: str) -> tuple[int, int]:
    """(height, width) of the image as `decode_image` returns it, read from the header only."""
    with open_image(source, where) as img:
        width, height = img.size
        if _orientation(img) in (5, 6, 7, 8):
            width, height = height, width
    return height, width


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode == "RGB":
        return np.array(img)
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "I":
        wide = np.clip(np.array(img).astype(np.int64), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    elif img.mode == "F":
        gray = np.clip(np.rint(np.array(img)), 0, 255).astype(np.uint8)
    else:
        return np.array(img.convert("RGB"))
    return np.repeat(gray[:, :, None], 3, axis=2)


def decode_image(source: Source, where: str) -> np.ndarray:
    """The image as a writable uint8 array of shape (H, W, 3)."""
    with open_image(source, where) as img:
        try:
            transpose = _TRANSPOSE_FOR_ORIENTATION.get(_orientation(img))
            oriented = img.transpose(transpose) if transpose is not None else img
            rgb = _to_rgb(oriented)
        except _DECODE_ERRORS as err:
            raise BenchError(f"{where}: image is corrupt or truncated ({err}); re-download or re-prepare it") from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def index_array(img: Image.Image) -> np.ndarray | None:
    """A single-channel index image (labels, predictions) in its stored dtype: uint8, uint16 or int32.

    None for any other mode (a colour rendering, say); decoding errors propagate.
    """
    if img.mode in ("L", "P", "1"):
        return np.array(img).astype(np.uint8, copy=False)
    if img.mode in _SIXTEEN_BIT_MODES:
        return np.array(img).astype(np.uint16)
    if img.mode == "I":
        return np.array(img).astype(np.int32)
    return None


def label_array(source: Source, where: str) -> np.ndarray:
    """The label map in its stored dtype (uint8, uint16 or int32), shape (H, W)."""
    with open_image(source, where) as img:
        try:
            array = index_array(img)
            if array is not None:
                return array
        except _DECODE_ERRORS as err:
            raise BenchError(f"{where}: label is corrupt or truncated ({err}); re-download or re-prepare it") from None
        channels = len(img.getbands())
    raise BenchError(
        f"{where}: label is a {img.mode} image with {channels} channel(s); labels must be single-channel "
        "index images (uint8 PNG, or 16-bit PNG for more than 255 classes)"
    )


def decode_label(source: Source, where: str) -> np.ndarray:
    """The label map as int64, shape (H, W): class indices and the ignore value."""
    return label_array(source, where).astype(np.int64)


def encode_label_png(label: np.ndarray) -> bytes:
    """Lossless PNG bytes of a label map: 8-bit when it fits, else 16-bit."""
    if label.min(initial=0) < 0 or label.max(initial=0) > 65535:
        raise ValueError("label values must lie in 0..65535 to be stored as PNG")
    dtype = np.uint8 if label.max(initial=0) <= 255 else np.uint16
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(label, dtype=dtype)).save(buffer, format="PNG")
    return buffer.getvalue()
