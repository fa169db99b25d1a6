"""Lazy image loading. A file that is missing or unreadable is a per-sample error, never a crash."""

from __future__ import annotations

from PIL import Image, UnidentifiedImageError

from harness.types import ImageRef


class ImageLoadError(Exception):
    """An image that could not be loaded; the message names the file."""


def load_image(ref: ImageRef) -> Image.Image:
    if not ref.path:
        raise ImageLoadError(f"image {ref.source}/{ref.id}: no path on this machine")
    try:
        with Image.open(ref.path) as img:
            img.load()  # force decoding now, so a truncated file fails here and not inside a model
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise ImageLoadError(f"image {ref.source}/{ref.id}: file not found: {ref.path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"image {ref.source}/{ref.id}: cannot decode {ref.path}: {exc}") from exc
