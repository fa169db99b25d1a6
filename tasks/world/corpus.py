"""The text-only corpus that pre-trains the miniature LLM: instructions and plain sentences, never images.

Each record is {"kind": ..., "text": ...}. Instruction records read `###Human: {instruction} ###Assistant:
{response}` (the conversation format of the paper, without an image); kinds are "description", "poem",
"recipe", "ad", "meme" (the paper's four advanced tasks, asked about named objects) and "plain" (one or two
plain sentences, no template). Objects are drawn from their own random stream, independent of any image:
the corpus teaches the language of the tasks, not what is in the pictures.
"""

from __future__ import annotations

import random

from tasks.world.captions import article, detailed_description, join, noun_phrase, sentence
from tasks.world.scenes import Obj, Scene, sample_scene
from tasks.world.vocab import NUMBER_WORDS, SUPERCATEGORY_NOUNS, coloured

KINDS = ("description", "poem", "recipe", "ad", "meme", "plain")
KIND_WEIGHTS = (3, 2, 2, 2, 2, 2)

INSTRUCTIONS = {
    "description": ("Describe a picture of {} in detail.", "Please provide a detailed description of a picture of {}.",
                    "Imagine an image with {}. Describe it as detailed as possible."),
    "poem": ("Write a poem about {}.", "Can you craft a beautiful poem about {}?", "Compose a short poem about {}."),
    "recipe": ("How should I make something like {}?", "Write a recipe for a dish inspired by {}.",
               "Give me a recipe that looks like {}."),
    "ad": ("Help me draft a professional advertisement for {}.", "Write an advertisement for {}.",
           "Draft a short advert selling {}."),
    "meme": ("Explain why a meme showing {} is funny.", "Explain why this meme is funny: {}.",
             "Why would a meme with {} make people laugh?"),
}


def corpus_record(rng: random.Random) -> dict[str, str]:
    kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
    scene = sample_scene(rng, 0)  # object names, colours and relations only; nothing is drawn
    while kind == "ad" and scene.count("person"):  # adverts sell things, not people
        scene = sample_scene(rng, 0)
    if kind == "plain":
        return {"kind": kind, "text": _plain(rng, scene)}
    names = join([noun_phrase(rng, o, colour=0.7, size=0.2) for o in scene.objects])
    instruction = rng.choice(INSTRUCTIONS[kind]).format(names)
    return {"kind": kind, "text": f"###Human: {instruction} ###Assistant: {respond(kind, rng, scene)}"}


def respond(kind: str, rng: random.Random, scene: Scene) -> str:
    """The answer to an instruction of `kind` ("description", "poem", "recipe", "ad", "meme") about `scene`."""
    return {"description": detailed_description, "poem": _poem, "recipe": _recipe, "ad": _ad,
            "meme": _meme}[kind](rng, scene)


def _w(obj: Obj) -> str:
    return coloured(obj.category, obj.colour)


def _poem(rng: random.Random, scene: Scene) -> str:
    first, *rest = scene.objects
    lines = [rng.choice((f"A {_w(first)} beneath a quiet sky,", f"Oh {_w(first)}, so calm and bright,",
                         f"There stands {article(_w(first))} all alone,"))]
    lines.append(rng.choice(("it watches slow hours drifting by.", "it glows in soft and silver light.",
                             "as still and patient as a stone.")))
    for obj in rest:
        lines.append(rng.choice((f"Beside it rests {article(_w(obj))},", f"And near it waits {article(_w(obj))},",
                                 f"Close by, {article(_w(obj))} in the gray,")))
        lines.append(rng.choice(("a friend that never goes away.", "together at the end of day.",
                                 "they share a quiet, gentle play.")))
    lines.append(rng.choice(("So simple shapes can tell a tale,", "In gray and color, small and great,")))
    lines.append(rng.choice(("of calm that time cannot make pale.", "they keep their silent, patient state.")))
    return "\n".join(lines)


def _recipe(rng: random.Random, scene: Scene) -> str:
    colours = join(sorted({o.colour for o in scene.objects}))
    shapes = join([o.name for o in scene.objects])
    steps = [
        "Mix two cups of flour, half a cup of sugar and a pinch of salt.",
        "Add three eggs and melted butter, then stir until the dough is smooth.",
        f"Divide the dough and color it {colours} with food coloring.",
        f"Shape each piece like the {shapes} and place them on a lined tray.",
        f"Bake for {rng.choice((12, 15, 20))} minutes until golden, then let them cool.",
    ]
    if rng.random() < 0.5:
        steps.insert(4, "Chill the shapes for ten minutes so they keep their form.")
    body = " ".join(f"{k}. {s}" for k, s in enumerate(steps, start=1))
    return (f"To make something like the {shapes}, you will need flour, sugar, eggs, butter and food coloring. "
            f"{body} Serve them together just like in the picture.")


def _ad(rng: random.Random, scene: Scene) -> str:
    first = scene.objects[0]
    extras = [article(_w(o)) for o in scene.objects[1:]]
    lines = [rng.choice((f"Introducing the {_w(first)}!", f"Meet the all-new {_w(first)}!",
                         f"Looking for the perfect {first.name}?"))]
    lines.append(rng.choice((f"Our {first.size} {first.name} is crafted with care and built to last.",
                             f"This {first.size} {first.name} brings bold {first.colour} style to every home.")))
    if extras:
        lines.append(f"It comes together with {join(extras)}, for a complete set.")
    lines.append(rng.choice(("Order today and enjoy free delivery!", "Limited stock available: get yours now!",
                             "Quality you can see. Buy now!")))
    return " ".join(lines)


def _meme(rng: random.Random, scene: Scene) -> str:
    first = scene.objects[0]
    sup = SUPERCATEGORY_NOUNS[first.category.supercategory]
    if len(scene.objects) > 1:
        other = scene.objects[1]
        joke = (f"it shows {article(_w(first))} acting as if it were {article(_w(other))}, "
                f"and the caption pretends this is completely normal")
    else:
        joke = f"it shows {article(_w(first))} posing very seriously, as if it were the most important {sup} ever"
    return (f"The meme is funny because {joke}. The humor comes from the contrast between the simple picture "
            f"and the dramatic text. {rng.choice(('It is absurd and relatable.', 'The exaggeration makes it silly.'))}")


def _plain(rng: random.Random, scene: Scene) -> str:
    obj = scene.objects[0]
    sup = SUPERCATEGORY_NOUNS[obj.category.supercategory]
    options = [
        f"{article(obj.name)} is a kind of {sup}.",
        f"The {_w(obj)} is {obj.size}.",
        f"{obj.colour.capitalize()} is a color, and {obj.name} is a word for {article(sup)}.",
        f"There are {NUMBER_WORDS[len(scene.objects)]} things here: {join([article(_w(o)) for o in scene.objects])}.",
    ]
    if len(scene.objects) > 1:
        a, b = scene.objects[:2]
        options.append(f"The {_w(a)} is next to the {_w(b)}.")
    return " ".join(sentence(text) for text in rng.sample(options, rng.randint(1, 2)))
