"""Decoding the odd files real datasets hold, refusing the bad ones, and resizing."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from carbrands.data.images import UnusableImage, decode_bytes, load_for_model, read_bytes, resize

BIG = 10**8


def decode(path, max_pixels):
    """One file into uint8 RGB, as the audit decodes it (exact pixels, no draft)."""
    return decode_bytes(read_bytes(path), max_pixels)[0]


def _rgb(w=40, h=30):
    """A left-to-right red ramp with a blue top band: orientation and colour are checkable."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    a[: max(2, h // 6), :, 2] = 255
    return a


def _save(tmp_path, name, image, fmt, **kw):
    path = tmp_path / name
    image.save(path, format=fmt, **kw)
    return path


@pytest.mark.parametrize("name,fmt", [("a.jpg", "WEBP"), ("b.jpg", "PNG"), ("C.JPG", "JPEG"), ("d.JPEG", "PNG")])
def test_format_is_read_from_content_not_extension(tmp_path, name, fmt):
    path = _save(tmp_path, name, Image.fromarray(_rgb()), fmt, **({"quality": 95} if fmt != "PNG" else {}))
    pixels, real = decode_bytes(path.read_bytes(), BIG)
    assert real == fmt and pixels.shape == (30, 40, 3) and pixels.dtype == np.uint8
    assert pixels[15, 35, 0] > pixels[15, 5, 0] + 150  # the ramp survived


def test_cmyk_grey_palette_decode_to_rgb(tmp_path):
    base = Image.fromarray(_rgb())
    for mode, fmt in (("CMYK", "JPEG"), ("L", "PNG"), ("P", "PNG")):
        path = _save(tmp_path, f"x_{mode}.jpg", base.convert(mode), fmt)
        out = decode(path, BIG)
        assert out.shape == (30, 40, 3) and out.dtype == np.uint8, mode
        assert abs(int(out[15, 39].mean()) - int(out[15, 0].mean())) > 40, mode


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((10, 10, 4), np.uint8)
    a[..., 0] = 255
    a[:, 5:, 3] = 255          # right half opaque red, left half fully transparent
    out = decode(_save(tmp_path, "t.png", Image.fromarray(a, "RGBA"), "PNG"), BIG)
    assert out[5, 0].tolist() == [255, 255, 255]
    assert out[5, 9].tolist() == [255, 0, 0]


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)   # PIL opens this as a 16-bit mode (I;16 / I)
    out = decode(path, BIG)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert 100 < out[4, 0, 0] < 160    # the middle stays mid-grey instead of saturating


def test_exif_orientation_6_rotates(tmp_path):
    image = Image.fromarray(_rgb(40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path, "r.jpg", image, "JPEG", exif=exif.tobytes(), quality=95)
    out = decode(path, BIG)
    assert out.shape == (40, 30, 3)
    # the blue top band is now the right-hand side
    assert out[:, -1, 2].mean() > 150 and out[:, 0, 2].mean() < 80


def test_bad_files_are_refused_with_a_reason(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    (tmp_path / "notes.jpg").write_text("just some text\n")
    full = _save(tmp_path, "full.jpg", Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (200, 200, 3), dtype=np.uint8)), "JPEG", quality=90)
    (tmp_path / "cut.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    expected = {"zero.jpg": "zero-byte", "page.jpg": "not an image (HTML)", "notes.jpg": "not an image (text)",
                "cut.jpg": "truncated JPEG"}
    for name, reason in expected.items():
        with pytest.raises(UnusableImage, match=reason.replace("(", r"\(").replace(")", r"\)")):
            decode(tmp_path / name, BIG)


def _png_header(width, height):
    """A PNG that claims huge dimensions in a few bytes: a decompression bomb's header."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(_png_header(20000, 20000))
    with pytest.raises(UnusableImage, match="too large to decode safely: 20000x20000"):
        decode(bomb, 40_000_000)
    small = _save(tmp_path, "s.png", Image.fromarray(_rgb()), "PNG")
    with pytest.raises(UnusableImage, match="40x30"):
        decode(small, 1000)


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_resize_gives_a_square(mode):
    out = resize(_rgb(80, 40), 32, mode)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_pad_keeps_aspect_ratio():
    image = np.full((40, 80, 3), 200, np.uint8)      # 2:1 landscape, light grey
    out = resize(image, 32, "pad")
    # 32x16 picture centred: 8 grey rows above and below
    assert (out[:8] == 128).all() and (out[-8:] == 128).all()
    assert (out[8:24] == 200).all()
    tall = resize(np.full((80, 40, 3), 200, np.uint8), 32, "pad")
    assert (tall[:, :8] == 128).all() and (tall[:, 8:24] == 200).all()


def test_crop_takes_the_centre():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 20:60] = 255                             # the centre square is white
    assert (resize(image, 16, "crop") > 230).all()  # LANCZOS rings a little at the edges


def test_load_for_model_uses_the_jpeg_draft_and_keeps_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(tmp_path, "big.jpg", Image.fromarray(_rgb(400, 300)), "JPEG", exif=exif.tobytes(), quality=95)
    out = load_for_model(path, 32, "stretch", BIG)
    assert out.shape == (32, 32, 3)
    assert out[:, -1, 2].mean() > 150 and out[:, 0, 2].mean() < 80
