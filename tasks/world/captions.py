"""Text about a scene: COCO-style captions, stage-1 web captions, detailed descriptions and narratives.

All text is templated from the scene and a `random.Random` stream. Objects are named with their CHAIR
words (`Category.singulars`, e.g. "puppy", "motor bike", "teddy bear"); a category with two or more
instances is sometimes named in the plural ("two dogs"). No template word names any COCO category.
"""

from __future__ import annotations

import random

from tasks.world.scenes import Obj, Scene, region, relation
from tasks.world.vocab import NUMBER_WORDS, coloured

REL_PHRASES = {
    "left of": ("to the left of", "left of", "next to", "beside"),
    "right of": ("to the right of", "right of", "next to", "beside"),
    "above": ("above", "over", "on top of"),
    "below": ("below", "under", "beneath"),
}


def word(rng: random.Random, obj: Obj) -> str:
    """A mention word for the object's category: its COCO name half the time, else any of its words."""
    words = obj.category.singulars
    return words[0] if rng.random() < 0.5 else rng.choice(words)


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def noun_phrase(rng: random.Random, obj: Obj, colour: float = 1.0, size: float = 0.3, det: str = "a") -> str:
    """"a large red puppy": colour and size included with the given probabilities; det "a", "the" or ""."""
    phrase = word(rng, obj)
    if rng.random() < colour:
        phrase = coloured(obj.category, obj.colour, phrase)
    if rng.random() < size:
        phrase = f"{obj.size} {phrase}"
    return {"a": article(phrase), "the": f"the {phrase}"}.get(det, phrase)


def the(obj: Obj, rng: random.Random) -> str:
    """A definite reference that picks out one object ("the red dog": colours differ within a category)."""
    return f"the {coloured(obj.category, obj.colour, word(rng, obj))}"


def join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def region_phrase(scene: Scene, obj: Obj) -> str:
    vertical, horizontal = region(scene, obj)
    if vertical == "middle":
        return "in the center" if horizontal == "center" else f"on the {horizontal} side"
    if horizontal == "center":
        return f"at the {vertical}"
    return f"in the {vertical} {horizontal} corner"


def grouped(rng: random.Random, scene: Scene, det: str = "a") -> list[str]:
    """Noun phrases for all objects, several of one category merged into "two dogs" half the time."""
    phrases = []
    for name in scene.categories():
        members = [o for o in scene.objects if o.name == name]
        if len(members) > 1 and rng.random() < 0.5:
            phrases.append(f"{NUMBER_WORDS[len(members)]} {members[0].category.plural}")
        else:
            phrases += [noun_phrase(rng, o, colour=0.7, det=det) for o in members]
    return phrases


def _pair(rng: random.Random, scene: Scene) -> tuple[Obj, Obj]:
    a, b = rng.sample(list(scene.objects), 2)
    return a, b


def coco_captions(rng: random.Random, scene: Scene, n: int = 5) -> list[str]:
    """`n` different one-sentence captions in the style of COCO's five per image."""
    templates = [_cap_list, _cap_picture, _cap_sizes, _cap_there_is, _cap_short, _cap_background]
    if len(scene.objects) > 1:
        templates += [_cap_relation, _cap_relation, _cap_relation_rest]
    captions: list[str] = []
    for _ in range(50 * n):
        text = sentence(rng.choice(templates)(rng, scene))
        if text not in captions:
            captions.append(text)
        if len(captions) == n:
            return captions
    raise RuntimeError("could not vary the captions")  # unreachable with the templates above


def _cap_list(rng: random.Random, scene: Scene) -> str:
    return join(grouped(rng, scene))


def _cap_picture(rng: random.Random, scene: Scene) -> str:
    lead = rng.choice(("a picture of", "an image of", "a drawing of", "a simple picture showing", "this is"))
    return f"{lead} {join(grouped(rng, scene))}"


def _cap_sizes(rng: random.Random, scene: Scene) -> str:
    return join([noun_phrase(rng, o, size=1.0) for o in scene.objects])


def _cap_there_is(rng: random.Random, scene: Scene) -> str:
    obj = rng.choice(scene.objects)
    return f"there is {noun_phrase(rng, obj, size=0.5)} {region_phrase(scene, obj)} of the picture"


def _cap_short(rng: random.Random, scene: Scene) -> str:
    return f"{noun_phrase(rng, rng.choice(scene.objects), colour=0.8, size=0.0)} on a plain background"


def _cap_background(rng: random.Random, scene: Scene) -> str:
    shade = rng.choice(("gray", "grey", "dull gray"))
    return f"{join(grouped(rng, scene))} against a {shade} background"


def _cap_relation(rng: random.Random, scene: Scene) -> str:
    a, b = _pair(rng, scene)
    rel = rng.choice(REL_PHRASES[relation(a, b)])
    verb = rng.choice(("", "sitting ", "placed ", "is "))
    return f"{noun_phrase(rng, a)} {verb}{rel} {noun_phrase(rng, b)}".replace("  ", " ")


def _cap_relation_rest(rng: random.Random, scene: Scene) -> str:
    a, b = _pair(rng, scene)
    rest = [noun_phrase(rng, o, colour=0.5) for o in scene.objects if o not in (a, b)]
    tail = f" with {join(rest)} nearby" if rest else ""
    return f"{noun_phrase(rng, a)} {REL_PHRASES[relation(a, b)][0]} {noun_phrase(rng, b)}{tail}"


def placed_caption(rng: random.Random, scene: Scene) -> str:
    """One sentence placing every object, in reading order: "a red dog in the top left corner and a small blue cup
    at the bottom" (web text that says where things are; not one of the world's COCO-style references)."""
    return sentence(join([f"{noun_phrase(rng, o, colour=0.9, size=0.3)} {region_phrase(scene, o)}"
                          for o in reading_order(scene)]))


def web_caption(rng: random.Random, scene: Scene) -> str:
    """A short, noisy alt-text caption for stage 1 (CC/SBU/LAION style: fragments, case and symbols vary)."""
    phrases = grouped(rng, scene, det=rng.choice(("a", "")))
    if len(phrases) > 1 and rng.random() < 0.3:
        phrases = rng.sample(phrases, rng.randint(1, len(phrases) - 1))  # web text leaves things out
    body = join(phrases)
    text = rng.choice((
        "{}", "photo of {}", "{} - stock image", "illustration: {}", "{} on gray", "minimal art with {}",
        "{} #minimal", "cute {}", "{} (vector)", "simple drawing of {}",
    )).format(body)
    return text.lower() if rng.random() < 0.5 else sentence(text)


def reading_order(scene: Scene) -> list[Obj]:
    """The objects as a detailed description names them: by rows (top, middle, bottom), then left to right."""
    return sorted(scene.objects, key=lambda o: (round(o.centre[1] / scene.height), o.centre[0]))


def detailed_description(rng: random.Random, scene: Scene) -> str:
    """A multi-sentence description naming every object, its colour, size, place and relations."""
    objects = reading_order(scene)
    n = len(objects)
    count = "a single object" if n == 1 else f"{NUMBER_WORDS[n]} objects"
    out = [rng.choice((
        f"The image shows {count} on a plain gray background.",
        f"This picture contains {count} placed on a gray background.",
        f"In this image we see {count} against a simple gray backdrop.",
    ))]
    for obj in objects:
        np_ = noun_phrase(rng, obj, size=1.0)
        out.append(sentence(rng.choice((
            f"{region_phrase(scene, obj)} there is {np_}",
            f"{np_} can be seen {region_phrase(scene, obj)}",
            f"{region_phrase(scene, obj)} of the image, we can see {np_}",
        ))))
    for a, b in zip(objects, objects[1:], strict=False):
        out.append(sentence(f"{the(a, rng)} is {REL_PHRASES[relation(a, b)][0]} {the(b, rng)}"))
    if n > 2:
        a, b = objects[0], objects[-1]
        out.append(sentence(f"{the(a, rng)} is {REL_PHRASES[relation(a, b)][0]} {the(b, rng)}"))
    sizes = {o.size for o in objects}
    if len(sizes) == 2:
        big = [o for o in objects if o.size == "large"]
        small = [o for o in objects if o.size == "small"]
        out.append(sentence(f"{join([the(o, rng) for o in big])} {'is' if len(big) == 1 else 'are'} larger than "
                            f"{join([the(o, rng) for o in small])}"))
    for name in scene.categories():
        members = [o for o in objects if o.name == name]
        if len(members) > 1:
            colours = join([o.colour for o in members])
            verb = "dressed in" if name == "person" else "colored"
            out.append(f"There are {NUMBER_WORDS[len(members)]} {members[0].category.plural} in total, "
                       f"{verb} {colours}.")
    out.append(rng.choice((
        "Nothing else appears in the picture.", "The scene is simple and clearly arranged.",
        "The rest of the image is empty.", "The background is plain and without any texture.",
    )))
    return " ".join(out)


def narrative(rng: random.Random, scene: Scene) -> str:
    """A Localized-Narratives-style monotone account: "In this picture we can see a dog. We can see ..."."""
    objects = sorted(scene.objects, key=lambda o: o.centre[0])
    out = [f"In this picture we can see {noun_phrase(rng, objects[0], size=0.0)}."]
    for obj in objects[1:]:
        lead = rng.choice(("We can see", "We can also see", sentence(region_phrase(scene, obj))[:-1] + " we can see"))
        out.append(f"{lead} {noun_phrase(rng, obj, size=0.0)}.")
    out.append(rng.choice(("In the background it is gray.", "The background is gray in color.")))
    return " ".join(out)
