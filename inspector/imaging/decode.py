"""Turn untrusted encoded image bytes into an upright 8-bit RGB Pillow image, or say why not."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inspector.errors import InvalidArgument

# EPS is decoded by spawning Ghostscript: never for bytes that come from a client.
_REFUSED_FORMATS = {"EPS"}
_WHITE = (255, 255, 255)


def _allowed_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in Image.OPEN if f not in _REFUSED_FORMATS)


def decode_image(
    data: bytes, *, max_pixels: int = 50_000_000, max_bytes: int = 64 << 20
) -> Image.Image:
    """Decode any Pillow-readable image, apply its EXIF orientation and return it as RGB.

    Oversized, bomb-like, truncated or unreadable inputs raise InvalidArgument naming the reason.
    """
    if not data:
        raise InvalidArgument("The image is empty (0 bytes); send the encoded file bytes.")
    if len(data) > max_bytes:
        raise InvalidArgument(
            f"The image is {len(data):,} bytes, over the {max_bytes:,}-byte "
            "limit; send a smaller or more compressed file."
        )
    try:
        image = Image.open(io.BytesIO(data), formats=_allowed_formats())
    except Image.DecompressionBombError as exc:
        raise InvalidArgument(f"The image is refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidArgument(
            "The bytes are not an image in a supported format (PNG, JPEG, WebP, BMP, TIFF, GIF, "
            "...); send the encoded file as it is on disk."
        ) from exc
    except Exception as exc:  # Pillow raises many types for corrupt headers
        raise InvalidArgument(f"The image header is corrupt: {exc}") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidArgument(f"The image declares an empty size {width}x{height}.")
    if width * height > max_pixels:
        raise InvalidArgument(
            f"The image is {width}x{height} = {width * height:,} pixels, over the "
            f"{max_pixels:,} pixel limit; downscale it before sending."
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except InvalidArgument:
        raise
    except Exception as exc:  # truncated data, corrupt chunks, oversized text chunks, ...
        raise InvalidArgument(
            f"The {image.format or 'image'} file could not be decoded (truncated or corrupt?): {exc}"
        ) from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB the way a viewer shows it (transparency over white)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_gray_to_uint8(np.asarray(image))).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise InvalidArgument(
            f"Images in Pillow mode {mode!r} cannot be converted to RGB; save it as RGB PNG/JPEG."
        ) from exc


def _gray_to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit integer or float gray pixels to 0..255.

    Integers within 0..65535 keep their 16-bit scale (65535 -> 255, as viewers show 16-bit PNGs);
    floats within [0, 1] map 1.0 -> 255; anything else is stretched from its min to its max.
    """
    is_float = np.issubdtype(a.dtype, np.floating)
    a = a.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, np.uint8)
    low, high = float(a[finite].min()), float(a[finite].max())
    if is_float and low >= 0 and high <= 1:
        scaled = a * 255.0
    elif not is_float and low >= 0 and high <= 65535:
        scaled = a / 257.0
    elif high > low:
        scaled = (a - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(a)
    scaled = np.where(finite, scaled, 0.0)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
