"""Scenes: 1-4 glyph objects on a plain background, their geometry, relations and the drawn JPEG.

A scene is sampled first (pure data, `sample_scene`) and drawn later (`draw_jpeg`), so the text
generators and the corpus can use scenes without pixels. With two or more objects each object sits in its
own quadrant of the image, so objects never overlap and every pair has a clear spatial relation.
Objects of the same category in one scene always differ in colour, so "the red dog" names exactly one.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from tasks.world.vocab import CATEGORIES, COLOURS, SIZES, Category

IMAGE_SIDES = (80, 96, 112, 128)
SIZE_FRACTION = {"small": (0.20, 0.26), "large": (0.38, 0.46)}  # glyph side / shorter image side
OBJECT_COUNT_WEIGHTS = {1: 2, 2: 4, 3: 3, 4: 2}
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Obj:
    category: Category
    colour: str
    size: str  # "small" | "large"
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), a square

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    @property
    def name(self) -> str:
        return self.category.name


@dataclass(frozen=True)
class Scene:
    image_id: int
    width: int
    height: int
    background: tuple[int, int, int]
    objects: tuple[Obj, ...]

    def count(self, category_name: str) -> int:
        return sum(o.name == category_name for o in self.objects)

    def categories(self) -> list[str]:
        """Distinct category names in order of first appearance."""
        return list(dict.fromkeys(o.name for o in self.objects))


def sample_scene(rng: random.Random, image_id: int) -> Scene:
    width, height = rng.choice(IMAGE_SIDES), rng.choice(IMAGE_SIDES)
    n = rng.choices(list(OBJECT_COUNT_WEIGHTS), weights=list(OBJECT_COUNT_WEIGHTS.values()))[0]
    side = min(width, height)
    if n == 1:
        cells = [(0, 0, width, height)]
    else:
        quadrants = [(cx, cy) for cy in (0, 1) for cx in (0, 1)]
        cells = [(cx * width // 2, cy * height // 2, (cx + 1) * width // 2, (cy + 1) * height // 2)
                 for cx, cy in rng.sample(quadrants, n)]
    objects: list[Obj] = []
    for x0, y0, x1, y1 in cells:
        if objects and rng.random() < 0.25:
            category = rng.choice(objects).category  # a second one of a category: counting questions
        else:
            category = rng.choice(CATEGORIES)
        used = {o.colour for o in objects if o.category == category}
        colour = rng.choice([c for c in COLOURS if c not in used])
        size = rng.choice(SIZES)
        lo, hi = SIZE_FRACTION[size]
        s = min(round(side * rng.uniform(lo, hi)), x1 - x0 - 2, y1 - y0 - 2)
        bx, by = rng.randint(x0 + 1, x1 - 1 - s), rng.randint(y0 + 1, y1 - 1 - s)
        objects.append(Obj(category, colour, size, (bx, by, bx + s, by + s)))
    grey = rng.randint(105, 150)
    background = (grey + rng.randint(-8, 8), grey + rng.randint(-8, 8), grey + rng.randint(-8, 8))
    return Scene(image_id, width, height, background, tuple(objects))


# ---- relations ------------------------------------------------------------------------------------------

def relation(a: Obj, b: Obj) -> str:
    """Where `a` is relative to `b` along the dominant axis: "left of", "right of", "above" or "below"."""
    (ax, ay), (bx, by) = a.centre, b.centre
    if abs(bx - ax) >= abs(by - ay):
        return "left of" if ax < bx else "right of"
    return "above" if ay < by else "below"


def clearly(a: Obj, b: Obj, rel: str) -> bool:
    """True when `a` is `rel` `b` with no overlap on that axis (safe to ask a question about)."""
    checks = {
        "left of": a.box[2] <= b.box[0], "right of": a.box[0] >= b.box[2],
        "above": a.box[3] <= b.box[1], "below": a.box[1] >= b.box[3],
    }
    return checks[rel]


def region(scene: Scene, obj: Obj) -> tuple[str, str]:
    """(vertical, horizontal) third of the image holding the object's centre: ("top", "left") etc."""
    cx, cy = obj.centre
    horizontal = ("left", "center", "right")[min(2, int(3 * cx / scene.width))]
    vertical = ("top", "middle", "bottom")[min(2, int(3 * cy / scene.height))]
    return vertical, horizontal


def side_of_image(scene: Scene, obj: Obj) -> str | None:
    """"left"/"right" when the whole object lies in that half of the image, else None."""
    if obj.box[2] <= scene.width / 2:
        return "left"
    if obj.box[0] >= scene.width / 2:
        return "right"
    return None


# ---- geometry and drawing ----------------------------------------------------------------------------

def _outline(shape: str, s: float) -> list[tuple[float, float]]:
    """The glyph's outline polygon in a box of side `s` at the origin (circles as 32-gons)."""
    h = s / 2
    if shape in ("circle", "ring"):
        return [(h + h * math.cos(2 * math.pi * k / 32), h + h * math.sin(2 * math.pi * k / 32)) for k in range(32)]
    if shape == "square":
        return [(0, 0), (s, 0), (s, s), (0, s)]
    if shape == "triangle":
        return [(h, 0), (s, s), (0, s)]
    if shape == "diamond":
        return [(h, 0), (s, h), (h, s), (0, h)]
    if shape == "star":
        return [(h + (h if k % 2 == 0 else 0.42 * h) * math.sin(math.pi * k / 5),
                 h * 1.08 - (h if k % 2 == 0 else 0.42 * h) * math.cos(math.pi * k / 5)) for k in range(10)]
    if shape == "cross":
        a, b = s / 3, 2 * s / 3
        return [(a, 0), (b, 0), (b, a), (s, a), (s, b), (b, b), (b, s), (a, s), (a, b), (0, b), (0, a), (a, a)]
    if shape == "hourglass":
        w = 0.1 * s
        return [(0, 0), (s, 0), (h + w, h), (s, s), (0, s), (h - w, h)]
    raise ValueError(f"unknown shape {shape!r}")


def _polygon_area(points: list[tuple[float, float]]) -> float:
    shifted = points[1:] + points[:1]
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, shifted, strict=True))) / 2


def segmentation(obj: Obj) -> tuple[list[float], float]:
    """COCO polygon (flat [x, y, ...] in image pixels) and area; a ring's area excludes its hole."""
    x0, y0, x1, _ = obj.box
    s = x1 - x0
    points = _outline(obj.category.shape, s)
    area = _polygon_area(points)
    if obj.category.shape == "ring":
        area *= 1 - 0.5**2  # the hole has half the radius
    return [round(v, 2) for x, y in points for v in (x + x0, y + y0)], round(area, 2)


def _mask(shape: str, s: int) -> Image.Image:
    mask = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(mask)
    if shape in ("circle", "ring"):
        draw.ellipse((0, 0, s - 1, s - 1), fill=255)
        if shape == "ring":
            q = s / 4
            draw.ellipse((q, q, s - 1 - q, s - 1 - q), fill=0)
    else:
        draw.polygon(_outline(shape, s - 1), fill=255)
    return mask


def _texture(texture: str, colour: tuple[int, int, int], s: int) -> Image.Image:
    tile = Image.new("RGB", (s, s), colour)
    dark = tuple(int(c * 0.4) for c in colour)
    draw = ImageDraw.Draw(tile)
    if texture == "striped":
        for k in range(-s, s, 6):
            draw.line((k, 0, k + s, s), fill=dark, width=2)
    elif texture == "dotted":
        for y in range(2, s, 6):
            for x in range(2 + (y // 6 % 2) * 3, s, 6):
                draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=dark)
    return tile


def label_map(scene: Scene, index: dict[str, int], attribute: str = "name") -> Image.Image:
    """The scene's per-pixel label map ("L" image, the scene's size): `index[obj.<attribute>]` (the category name
    by default; "colour" gives a colour map) where an object's glyph is drawn (its mask, holes included), 0 on the
    background. Drawn with the same masks as `draw_jpeg`."""
    labels = Image.new("L", (scene.width, scene.height), 0)
    for obj in scene.objects:
        s = obj.box[2] - obj.box[0]
        labels.paste(index[getattr(obj, attribute)], obj.box[:2], _mask(obj.category.shape, s))
    return labels


def draw_jpeg(scene: Scene) -> bytes:
    """The scene as JPEG bytes (fixed quality, no metadata: the same scene always gives the same bytes)."""
    image = Image.new("RGB", (scene.width, scene.height), scene.background)
    for obj in scene.objects:
        s = obj.box[2] - obj.box[0]
        tile = _texture(obj.category.texture, COLOURS[obj.colour], s)
        image.paste(tile, obj.box[:2], _mask(obj.category.shape, s))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def scene_image(scene: Scene) -> Image.Image:
    """The scene as the world's files hold it (`draw_jpeg`), read back as an RGB image."""
    with Image.open(io.BytesIO(draw_jpeg(scene))) as image:
        return image.convert("RGB")
