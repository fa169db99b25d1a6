"""The synthetic world's vocabulary: which COCO categories exist, how each is drawn, and the words for them.

Every category is a glyph: one of 8 shapes filled with one of 3 textures (24 categories), so a model can
learn it from pixels. Every object also has a colour (6) and a size (small/large). The words used for a
category are taken from its CHAIR synonyms (`coco_names.CHAIR_SYNONYMS`), including two-word names
("teddy bear", "motor bike"), so captions exercise CHAIR's synonym and two-word handling. None of the words
here, nor any other word the generator writes, may name a COCO category that is not in the picture: the
colour "orange" is left out for that reason (it is a COCO food), and so are words like "table" or "seat".
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.world.coco_names import CHAIR_SYNONYMS, COCO_CATEGORIES

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hourglass")
TEXTURES = ("solid", "striped", "dotted")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 50),
    "blue": (40, 70, 215),
    "yellow": (235, 215, 40),
    "purple": (140, 45, 175),
    "white": (245, 245, 245),
}
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below", "next to")


@dataclass(frozen=True)
class Category:
    name: str  # the COCO name
    coco_id: int
    supercategory: str
    shape: str
    texture: str
    singulars: tuple[str, ...]  # mention words, first = the COCO name; all are CHAIR words for this category
    plural: str  # the plural of the first word ("two dogs"); CHAIR singularises it back


# (COCO name, shape, texture, extra mention words, plural). Extra words must be CHAIR synonyms.
_TABLE: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    ("person", "circle", "solid", ("man", "woman", "child"), "people"),
    ("bicycle", "circle", "striped", ("bike",), "bicycles"),
    ("car", "circle", "dotted", ("automobile", "sedan"), "cars"),
    ("motorcycle", "square", "solid", ("motorbike", "motor bike"), "motorcycles"),
    ("airplane", "square", "striped", ("plane", "jet", "air plane"), "airplanes"),
    ("bus", "square", "dotted", ("minibus",), "buses"),
    ("train", "triangle", "solid", ("locomotive",), "trains"),
    ("boat", "triangle", "striped", ("ship", "sailboat"), "boats"),
    ("traffic light", "triangle", "dotted", ("traffic signal", "stoplight"), "traffic lights"),
    ("fire hydrant", "diamond", "solid", ("hydrant",), "fire hydrants"),
    ("stop sign", "diamond", "striped", (), "stop signs"),
    ("bird", "diamond", "dotted", ("parrot", "pigeon"), "birds"),
    ("cat", "star", "solid", ("kitten", "kitty"), "cats"),
    ("dog", "star", "striped", ("puppy", "doggy"), "dogs"),
    ("horse", "star", "dotted", ("pony",), "horses"),
    ("sheep", "cross", "solid", ("lamb",), "sheep"),
    ("cow", "cross", "striped", ("calf",), "cows"),
    ("elephant", "cross", "dotted", (), "elephants"),
    ("umbrella", "ring", "solid", (), "umbrellas"),
    ("banana", "ring", "striped", (), "bananas"),
    ("hot dog", "ring", "dotted", (), "hot dogs"),
    ("pizza", "hourglass", "solid", (), "pizzas"),
    ("cell phone", "hourglass", "striped", ("phone", "smartphone", "mobile phone"), "cell phones"),
    ("teddy bear", "hourglass", "dotted", ("teddybear",), "teddy bears"),
)
_COCO = {name: (cid, supercategory) for cid, name, supercategory in COCO_CATEGORIES}


def _category(name: str, shape: str, texture: str, extra: tuple[str, ...], plural: str) -> Category:
    cid, supercategory = _COCO[name]
    return Category(name, cid, supercategory, shape, texture, (name, *extra), plural)


CATEGORIES: tuple[Category, ...] = tuple(_category(*row) for row in _TABLE)
BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
# "kitty" is not in the CHAIR list (an unknown word there, not a hallucination); every other word is.
_NOT_CHAIR = {"kitty"}


def _check_table() -> None:
    glyphs = {(c.shape, c.texture) for c in CATEGORIES}
    assert len(glyphs) == len(CATEGORIES), "two categories share a glyph"
    for c in CATEGORIES:
        assert c.shape in SHAPES and c.texture in TEXTURES, c
        for word in c.singulars[1:]:
            assert word in CHAIR_SYNONYMS[c.name] or word in _NOT_CHAIR, (c.name, word)


_check_table()

NUMBER_WORDS = ("zero", "one", "two", "three", "four")
SUPERCATEGORY_NOUNS = {  # how a question names a supercategory ("Which animal ...?")
    "person": "person",
    "vehicle": "vehicle",
    "outdoor": "street object",
    "animal": "animal",
    "accessory": "accessory",
    "food": "food",
    "electronic": "device",
    "indoor": "toy",
}


def coloured(category: Category, colour: str, word: str | None = None) -> str:
    """"red dog"; people wear their colour ("man in red"), never "a white man" or "a red person"."""
    word = word or category.name
    return f"{word} in {colour}" if category.name == "person" else f"{colour} {word}"


def glyph_table() -> list[dict[str, object]]:
    """The category -> glyph table written into world.json (in category order)."""
    return [
        {"name": c.name, "id": c.coco_id, "supercategory": c.supercategory, "shape": c.shape,
         "texture": c.texture, "words": list(c.singulars), "plural": c.plural}
        for c in CATEGORIES
    ]
