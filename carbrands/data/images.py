"""Decoding image files the way the web delivers them, and resizing them for a model.

Real datasets hold WebP or PNG files named .jpg, CMYK and 16-bit images, photos
whose EXIF orientation says "rotate me", and files that are no image at all. This
module turns every readable file into uint8 RGB (H, W, 3) and every unreadable one
into UnusableImage with a short reason, never a raw PIL or OS error.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from carbrands.data.names import RESIZE_MODES
from carbrands.errors import first_line

# A truncated file must be refused, not silently completed with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

PAD_COLOUR = (128, 128, 128)   # neutral grey: no brand colour, mid-range for normalisation
_RESAMPLE = Image.Resampling.LANCZOS
_WHITE = (255, 255, 255)


class UnusableImage(Exception):
    """A file that cannot be used as an image; str() is a short human reason.

    `format` is what the content looks like (JPEG, PNG, HTML, text, empty, ...),
    so an audit can say what the file really is even when it is refused."""

    def __init__(self, reason: str, format: str = ""):
        super().__init__(reason)
        self.format = format


def load_for_model(path: str | Path, size: int, mode: str, max_pixels: int) -> np.ndarray:
    """Decode (RGB, EXIF orientation applied) and resize: the (size, size, 3) uint8 input the models take."""
    pixels, _ = decode_bytes(read_bytes(path), max_pixels, draft_size=size)
    return resize(pixels, size, mode)


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UnusableImage(f"cannot read file: {e.strerror or e}") from None


def decode_bytes(data: bytes, max_pixels: int, draft_size: int | None = None) -> tuple[np.ndarray, str]:
    """Decode file content into (uint8 RGB array, real format name).

    draft_size: when the result will be shrunk to this side anyway, let the JPEG
    decoder scale down by 1/2, 1/4 or 1/8 while decoding (much faster). The draft
    keeps both sides >= draft_size, so any later rotation or resize mode still has
    enough pixels. Leave it None where exact pixels matter (hashes)."""
    if not data:
        raise UnusableImage("zero-byte file", "empty")
    with warnings.catch_warnings():
        # PIL warns about odd EXIF or TIFF tags; thousands of such lines would bury the
        # stage's own output, and a file it can still decode is usable
        warnings.simplefilter("ignore")
        return _decode(data, max_pixels, draft_size)


def _decode(data: bytes, max_pixels: int, draft_size: int | None) -> tuple[np.ndarray, str]:
    try:
        image = _open_header(data)
    except Exception as e:  # noqa: BLE001 - corrupt headers raise many kinds (struct.error, ...)
        kind = sniff(data)
        if kind in ("HTML", "text", "unknown"):
            raise UnusableImage(f"not an image ({kind})", kind) from None
        raise UnusableImage(f"unreadable {kind} header: {first_line(e, 120)}", kind) from None
    fmt = image.format or "unknown"
    width, height = image.size
    if width * height > max_pixels:
        raise UnusableImage(f"too large to decode safely: {width}x{height} pixels > data.max_image_pixels", fmt)
    if width < 1 or height < 1:
        raise UnusableImage(f"empty image ({width}x{height} pixels)", fmt)
    try:
        if draft_size and fmt == "JPEG":
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return _to_rgb(image), fmt
    except UnusableImage:
        raise
    except Image.DecompressionBombError:
        raise UnusableImage(f"too large to decode safely: {width}x{height} pixels (PIL's limit)", fmt) from None
    except Exception as e:  # noqa: BLE001 - any decoder failure means "unusable", never a crash
        message = first_line(e, 120)
        if "truncated" in message.lower():
            raise UnusableImage(f"truncated {fmt}", fmt) from None
        if "broken data stream" in message:
            raise UnusableImage(f"corrupt {fmt} data", fmt) from None
        raise UnusableImage(f"cannot decode {fmt}: {message}", fmt) from None
    finally:
        image.close()


def _open_header(data: bytes) -> Image.Image:
    """Image.open reads only the header. PIL's own bomb check is switched off for that
    moment because decode_bytes checks width*height against max_pixels itself, before
    anything is decoded, and can then name the size and the param in its message."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return Image.open(io.BytesIO(data))
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def sniff(data: bytes) -> str:
    """What undecodable content looks like: a known image signature, HTML, text or unknown."""
    head = data[:512]
    for magic, name in ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP")):
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<svg")) or b"<html" in text:
        return "HTML"
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "text"
    return "unknown"


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: map 0..65535 onto 0..255 (PIL's convert would clip at 255)
        grey = np.asarray(image, dtype=np.float64)
        grey = np.clip(grey / 257.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float64) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P" and "transparency" in image.info or mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        # transparent parts become white, as most viewers show them
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def resize(image: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Resize uint8 RGB to (size, size, 3).

    pad: keep the aspect ratio, scale the longer side to `size`, centre it on grey;
    crop: centre crop to a square, then scale; stretch: scale each side on its own."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    h, w = image.shape[:2]
    src = Image.fromarray(np.ascontiguousarray(image[..., :3]), "RGB")
    if mode == "stretch":
        out = src.resize((size, size), _RESAMPLE)
    elif mode == "crop":
        side = min(h, w)
        left, top = (w - side) // 2, (h - side) // 2
        out = src.resize((size, size), _RESAMPLE, box=(left, top, left + side, top + side))
    else:
        scale = size / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        out = Image.new("RGB", (size, size), PAD_COLOUR)
        out.paste(src.resize((new_w, new_h), _RESAMPLE), ((size - new_w) // 2, (size - new_h) // 2))
    return np.asarray(out, dtype=np.uint8)
