"""Uploaded images: checked by decoding, stripped of metadata, resized, stored by content.

Nothing of an upload is trusted: its name and declared type are ignored, Pillow must decode it as
one of ``FORMATS``, and what is stored is re-encoded from the decoded pixels only, so EXIF (GPS
position, camera serial numbers), XMP, ICC comments and any trailing bytes are gone. The picture is
first turned upright by its EXIF orientation, as a browser would show it
(https://pillow.readthedocs.io/en/stable/reference/ImageOps.html#PIL.ImageOps.exif_transpose).

Decompression bombs are refused before any pixel is decoded: ``MAX_PIXELS`` is checked against
the header's size (Pillow's own ``DecompressionBombError`` is the second line of defence).

Files go under ``<data dir>/media/uploads/<key>/`` where ``key`` is the SHA-256 of the stored
original, so the same picture uploaded twice is stored once and its URLs never change (they can
be cached for good). ``/media/`` serves them (fedblog.web.media).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 8000 x 5000
WIDTHS = (480, 960, 1600)  # the variants pages offer in srcset
UPLOADS = "uploads"  # under the media folder
# decoded format -> (format we write, media type, file extension)
FORMATS = {
    "JPEG": ("JPEG", "image/jpeg", "jpg"),
    "PNG": ("PNG", "image/png", "png"),
    "GIF": ("PNG", "image/png", "png"),  # first frame only: animation is not kept
    "WEBP": ("WEBP", "image/webp", "webp"),
}


class ImageError(ValueError):
    """The upload is not an image we take; ``reason`` says why, for the author."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StoredImage:
    key: str  # SHA-256 of the stored original, hex
    media_type: str
    width: int
    height: int
    path: str  # the original, relative to the media folder: uploads/<key>/full.<ext>
    variants: dict[int, str] = field(default_factory=dict)  # width -> relative path, smaller than the original

    def srcset(self, base: str) -> str:
        """``srcset`` for an <img>, with ``base`` the public URL of the media folder."""
        items = [f"{base}/{p} {w}w" for w, p in sorted(self.variants.items())]
        items.append(f"{base}/{self.path} {self.width}w")
        return ", ".join(items)


def _decode(data: bytes) -> tuple[Image.Image, str]:
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; please make it smaller.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
    except UnidentifiedImageError:
        raise ImageError("This is not an image (JPEG, PNG, GIF or WebP).") from None
    except Image.DecompressionBombError:
        raise ImageError(f"The image has more than {MAX_PIXELS // 1_000_000} megapixels; make it smaller.") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"The image could not be read: {str(exc)[:120]}") from None
    if fmt not in FORMATS:
        raise ImageError(f"{fmt or 'This'} images are not taken; upload a JPEG, PNG, GIF or WebP.")
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        megapixels = MAX_PIXELS // 1_000_000
        raise ImageError(f"The image is {width}x{height} pixels; the most taken is {megapixels} megapixels.")
    try:
        opened = Image.open(io.BytesIO(data))
        opened.seek(0)
        opened.load()
        img = ImageOps.exif_transpose(opened)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"The image is damaged: {str(exc)[:120]}") from None
    return img, fmt


def _clean(img: Image.Image, out_format: str) -> Image.Image:
    """Pixels only: a new image in a mode the output format takes, with no info or metadata."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    mode = "RGBA" if has_alpha and out_format != "JPEG" else "RGB"
    if img.mode == "RGBA" and mode == "RGB":  # JPEG has no alpha: flatten on white
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        return flat
    clean = img.convert(mode)
    return Image.frombytes(clean.mode, clean.size, clean.tobytes())  # drops every info key


def _encode(img: Image.Image, out_format: str) -> bytes:
    buf = io.BytesIO()
    options: dict[str, dict[str, object]] = {"JPEG": {"quality": 85, "optimize": True, "progressive": True},
                                             "PNG": {"optimize": True}, "WEBP": {"quality": 82, "method": 4}}
    img.save(buf, format=out_format, **options[out_format])
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers never see half a file


def store_image(data: bytes, media_root: Path, widths: tuple[int, ...] = WIDTHS) -> StoredImage:
    """Check, clean and store an upload with its smaller variants; blocking work (run it off the loop)."""
    img, fmt = _decode(data)
    out_format, media_type, ext = FORMATS[fmt]
    clean = _clean(img, out_format)
    original = _encode(clean, out_format)
    key = hashlib.sha256(original).hexdigest()
    folder = f"{UPLOADS}/{key}"
    path = f"{folder}/full.{ext}"
    if not (media_root / path).is_file():
        _write(media_root / path, original)
    variants: dict[int, str] = {}
    for width in sorted(set(widths)):
        if width >= clean.width:
            continue
        rel = f"{folder}/{width}.{ext}"
        if not (media_root / rel).is_file():
            small = clean.resize((width, max(1, round(clean.height * width / clean.width))), Image.Resampling.LANCZOS)
            _write(media_root / rel, _encode(small, out_format))
        variants[width] = rel
    return StoredImage(key=key, media_type=media_type, width=clean.width, height=clean.height, path=path,
                       variants=variants)
