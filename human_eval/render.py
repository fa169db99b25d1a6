"""HTML rendering shared by the web app and the offline forms: one Jinja2 environment, autoescape ON.

Model outputs are untrusted (the paper asks models to write HTML/JS websites), so they only ever reach a
page through an autoescaped `{{ ... }}`; nothing here marks model text safe. Images are passed through only
when Pillow recognises them as a raster format browsers display; anything else is re-encoded to PNG.
"""

from __future__ import annotations

import base64
import hashlib
import io
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from PIL import Image, UnidentifiedImageError

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
RASTER_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
QUESTION = "Does the response meet the request?"
KIND_LABELS = {"repetition": "repetition", "fragment": "fragment / incomplete", "irrelevant": "irrelevant",
               "other": "other failure"}


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(question=QUESTION, kind_labels=KIND_LABELS)
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def csp_hash(source: str) -> str:
    """The CSP source expression allowing exactly this inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


def image_payload(path: str | None) -> tuple[bytes, str] | None:
    """(bytes, MIME type) of a displayable image, or None when the file is missing or not an image."""
    if not path:
        return None
    try:
        raw = Path(path).read_bytes()
        with Image.open(io.BytesIO(raw)) as img:
            if img.format in RASTER_TYPES:
                img.verify()
                return raw, RASTER_TYPES[img.format]
            out = io.BytesIO()
            img.convert("RGB").save(out, format="PNG")
            return out.getvalue(), "image/png"
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def image_data_uri(path: str | None) -> str | None:
    payload = image_payload(path)
    if payload is None:
        return None
    data, mime = payload
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
