"""fedblog.blog.images: uploads decoded, cleaned of metadata, turned upright, resized, stored once."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from fedblog.blog.images import MAX_PIXELS, ImageError, store_image


def _jpeg_with_exif(width: int, height: int, orientation: int) -> bytes:
    img = Image.new("RGB", (width, height), (200, 30, 30))
    img.paste((30, 30, 200), (0, 0, width // 2, height))  # left half blue: shows how it was turned
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSInfo: GPSLatitude
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_jpeg_is_turned_upright_and_loses_its_metadata(tmp_path: Path) -> None:
    data = _jpeg_with_exif(1200, 800, orientation=6)  # 6: shown rotated 90 degrees clockwise
    assert b"SecretCam" in data
    stored = store_image(data, tmp_path)
    assert (stored.media_type, stored.width, stored.height) == ("image/jpeg", 800, 1200)
    raw = (tmp_path / stored.path).read_bytes()
    assert b"SecretCam" not in raw and b"Exif" not in raw
    with Image.open(tmp_path / stored.path) as out:
        assert out.size == (800, 1200)
        assert not out.getexif()
        top_left = out.convert("RGB").getpixel((5, 5))
        assert isinstance(top_left, tuple) and top_left[2] > 150  # the blue half is now on top
    assert sorted(stored.variants) == [480]  # only widths below the original's
    with Image.open(tmp_path / stored.variants[480]) as small:
        assert small.size == (480, 720)
    assert stored.srcset("https://b/media").endswith("uploads/" + stored.key + "/full.jpg 800w")


def test_same_picture_twice_is_stored_once(tmp_path: Path) -> None:
    data = _jpeg_with_exif(600, 400, orientation=1)
    first, second = store_image(data, tmp_path), store_image(data, tmp_path)
    assert first == second
    assert len(list((tmp_path / "uploads").iterdir())) == 1


def test_png_keeps_transparency_and_gif_becomes_png(tmp_path: Path) -> None:
    img = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    stored = store_image(buf.getvalue(), tmp_path)
    with Image.open(tmp_path / stored.path) as out:
        assert out.mode == "RGBA" and out.getpixel((1, 1)) == (0, 0, 0, 0)
    gif = io.BytesIO()
    Image.new("P", (40, 40)).save(gif, format="GIF")
    assert store_image(gif.getvalue(), tmp_path).media_type == "image/png"


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\0\0\0\0IEND\xaeB`\x82")


@pytest.mark.parametrize(("data", "says"), [
    (b"", "empty"),
    (b"<html><script>alert(1)</script></html>", "not an image"),
    (b"%PDF-1.4 not a picture", "not an image"),
    (_png_header_only(100_000, 100_000), "megapixels"),
    (_jpeg_with_exif(400, 300, 1)[:1600], "damaged"),
])
def test_what_is_not_a_usable_image_is_refused_with_a_reason(tmp_path: Path, data: bytes, says: str) -> None:
    with pytest.raises(ImageError) as caught:
        store_image(data, tmp_path)
    assert says in caught.value.reason
    assert not (tmp_path / "uploads").exists()
    assert MAX_PIXELS < 100_000 * 100_000


def test_bmp_is_refused_though_pillow_reads_it(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, format="BMP")
    with pytest.raises(ImageError) as caught:
        store_image(buf.getvalue(), tmp_path)
    assert "BMP images are not taken" in caught.value.reason
