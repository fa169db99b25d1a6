"""Question records for A-OKVQA (multiple choice + direct answers) and GQA (balanced questions).

Both ask about colour, count, position and category, and only ask what the scene answers without
ambiguity: an object is named by category alone when it is the only one of its category, else by colour
and category (unique by construction); spatial questions only use pairs with no overlap on that axis.
Each question kind is a function that returns None when the scene cannot support it; the generators try
kinds in random order until one fits. People wear their colour ("the person wearing red").
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from tasks.world.scenes import Obj, Scene, clearly, relation, side_of_image
from tasks.world.vocab import BY_NAME, CATEGORIES, COLOURS, NUMBER_WORDS, SUPERCATEGORY_NOUNS, coloured

DIRECTIONS = {"left of": "left", "right of": "right", "above": "above", "below": "below"}
REL_WORDS = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
_ID_ALPHABET = string.ascii_letters + string.digits


def ref(scene: Scene, obj: Obj) -> str:
    """The shortest unique reference: "dog" or "red dog" ("person in red")."""
    return obj.name if scene.count(obj.name) == 1 else coloured(obj.category, obj.colour)


def counted(n: int, obj: Obj) -> str:
    return f"{NUMBER_WORDS[n]} {obj.name if n == 1 else obj.category.plural}"


def clear_pairs(scene: Scene, horizontal: bool = False) -> list[tuple[Obj, Obj, str]]:
    """(a, b, relation of a to b) for every ordered pair whose relation has no overlap on its axis."""
    rels = ("left of", "right of") if horizontal else tuple(DIRECTIONS)
    return [(a, b, relation(a, b)) for a in scene.objects for b in scene.objects
            if a is not b and relation(a, b) in rels and clearly(a, b, relation(a, b))]


def absent(rng: random.Random, scene: Scene, k: int) -> list[str]:
    present = set(scene.categories())
    return rng.sample([c.name for c in CATEGORIES if c.name not in present], k)


def _first_fit(rng: random.Random, kinds: list[Callable[[], dict | None]]) -> dict:
    rng.shuffle(kinds)
    for kind in kinds:
        record = kind()
        if record is not None:
            return record
    raise RuntimeError("no question kind fits the scene")  # unreachable: A-OKVQA colour/count and GQA existObj fit


# ---- A-OKVQA -----------------------------------------------------------------------------------------

def aokvqa_question(rng: random.Random, scene: Scene) -> dict[str, object]:
    """One A-OKVQA record with all train/val fields (the writer drops the answers for the test file)."""
    obj = rng.choice(scene.objects)
    name, wears = ref(scene, obj), obj.name == "person"

    def colour() -> dict | None:
        if scene.count(obj.name) > 1:
            return None  # its reference would give the answer away ("the red dog")
        question, has = (f"What color is the {name} wearing?", "is wearing") if wears else (
            f"What color is the {name} in the picture?", "is painted")
        return {"question": question, "answer": obj.colour,
                "distractors": rng.sample([c for c in COLOURS if c != obj.colour], 3),
                "alternatives": [f"light {obj.colour}", f"dark {obj.colour}"],
                "rationales": [f"The {name} {has} {obj.colour}.", f"Its color is clearly {obj.colour}.",
                               f"The {name} in the image is {'dressed in ' if wears else ''}{obj.colour}."]}

    def count() -> dict | None:
        n = scene.count(obj.name)
        if n == 1 and rng.random() < 0.5:
            return None  # most categories appear once: ask "how many" about singles less often
        return {"question": rng.choice((f"How many {obj.category.plural} are there?",
                                        f"How many {obj.category.plural} can be seen in the image?")),
                "answer": str(n), "distractors": [str(k) for k in range(1, 6) if k != n][:3],
                "alternatives": [NUMBER_WORDS[n]],
                "rationales": [f"I can count {counted(n, obj)} in the picture.", f"Counting them gives {n}.",
                               f"The image shows {counted(n, obj)} and nothing more of that kind."]}

    def category() -> dict | None:
        sup = obj.category.supercategory
        if sup != "person" and len({o.name for o in scene.objects if o.category.supercategory == sup}) == 1:
            question = f"Which {SUPERCATEGORY_NOUNS[sup]} is shown in this picture?"
        elif sum((o.colour, o.size) == (obj.colour, obj.size) for o in scene.objects) == 1:
            question = f"What is the {obj.size} {obj.colour} object in the image?"
        else:
            return None
        return {"question": question, "answer": obj.name, "distractors": absent(rng, scene, 3),
                "alternatives": list(obj.category.singulars[1:]),
                "rationales": [f"That object has the shape of a {obj.name}.", f"The object is a {obj.name}.",
                               f"It is a {obj.name}, a kind of {SUPERCATEGORY_NOUNS[sup]}."]}

    def position() -> dict | None:
        pairs = clear_pairs(scene)
        if not pairs:
            return None
        a, b, rel = rng.choice(pairs)
        answer = DIRECTIONS[rel]
        return {"question": f"Where is the {ref(scene, a)} relative to the {ref(scene, b)}?", "answer": answer,
                "distractors": [d for d in DIRECTIONS.values() if d != answer],
                "alternatives": [{"left": "to the left", "right": "to the right", "above": "on top",
                                  "below": "under"}[answer]],
                "rationales": [f"The {ref(scene, a)} is {REL_WORDS[rel]} the {ref(scene, b)}.",
                               f"It appears {REL_WORDS[rel]} the other one.",
                               f"In the picture the {a.name} is {REL_WORDS[rel]} the {b.name}."]}

    made = _first_fit(rng, [colour, count, category, position, position])
    answer = made["answer"]
    choices = [answer, *made["distractors"]]
    rng.shuffle(choices)
    difficult = rng.random() < 0.1
    n_right = rng.randint(4, 6) if difficult else rng.randint(7, 10)
    pool = made["alternatives"] or made["distractors"]
    direct = [answer] * n_right + [rng.choice(pool) for _ in range(10 - n_right)]
    rng.shuffle(direct)
    return {
        "question_id": "".join(rng.choice(_ID_ALPHABET) for _ in range(22)),
        "image_id": scene.image_id,
        "question": made["question"],
        "choices": choices,
        "correct_choice_idx": choices.index(answer),
        "direct_answers": direct,
        "difficult_direct_answer": difficult,
        "rationales": made["rationales"],
    }


# ---- GQA ---------------------------------------------------------------------------------------------

def gqa_question(rng: random.Random, scene: Scene, object_ids: dict[int, str]) -> dict[str, object]:
    """One GQA balanced-question record (the writer keys it by question id and fills "equivalent").

    `object_ids` maps id(obj) to the object's id string (its COCO annotation id; GQA object ids are strings).
    """
    obj = rng.choice(scene.objects)
    oid, name = object_ids[id(obj)], ref(scene, obj)
    select = ("select", f"{obj.name} ({oid})")
    unique = scene.count(obj.name) == 1  # else the reference names the colour: no colour questions
    is_ = "is wearing" if obj.name == "person" else "is"

    def direct_of() -> dict | None:
        if not unique:
            return None
        question = f"What color is the {name} wearing?" if obj.name == "person" else f"What color is the {name}?"
        return _gqa("directOf", "query", "attr", question, obj.colour,
                    f"The {name} {is_} {obj.colour}.", [select, ("query", "color")],
                    {"global": "color", "local": f"10q-{obj.name}_color"}, {name: oid})

    def exist_obj() -> dict:
        present = rng.random() < 0.5
        cat = obj.name if present else absent(rng, scene, 1)[0]
        plural = BY_NAME[cat].plural
        question = rng.choice((f"Is there a {cat} in the picture?", f"Are there any {plural} in this image?"))
        full = f"Yes, there is a {cat}." if present else f"No, there are no {plural}."
        return _gqa("existObj", "verify", "obj", question, "yes" if present else "no", full,
                    [("select", cat), ("exist", "?")], {"global": None, "local": f"13-{cat}"},
                    {name: oid} if present else {})

    def choose_attr() -> dict | None:
        if not unique:
            return None
        first, second = rng.sample([obj.colour, rng.choice([c for c in COLOURS if c != obj.colour])], 2)
        wearing = " wearing" if obj.name == "person" else ""
        return _gqa("chooseAttr", "choose", "attr", f"Is the {name}{wearing} {first} or {second}?", obj.colour,
                    f"The {name} {is_} {obj.colour}.", [select, ("choose color", f"{first}|{second}")],
                    {"global": "color", "local": f"10c-{obj.name}_color"}, {name: oid})

    def verify_attr() -> dict:
        size = rng.choice(("small", "large"))
        yes = size == obj.size
        full = f"Yes, the {name} is {size}." if yes else f"No, the {name} is {obj.size}."
        return _gqa("verifyAttr", "verify", "attr", f"Is the {name} {size}?", "yes" if yes else "no", full,
                    [select, ("verify size", size)], {"global": None, "local": f"06-{obj.name}_{size}"}, {name: oid})

    def rel_s() -> dict | None:
        pairs = clear_pairs(scene)
        if not pairs:
            return None
        a, b, rel = rng.choice(pairs)
        there = [o for o in scene.objects if o is not b and relation(o, b) == rel]
        if len({o.name for o in there}) > 1:
            return None  # "what is left of b?" would have two right answers
        b_name = ref(scene, b)
        return _gqa("relS", "query", "rel", f"What is {REL_WORDS[rel]} the {b_name}?", a.name,
                    f"The {a.name} is {REL_WORDS[rel]} the {b_name}.",
                    [("select", f"{b.name} ({object_ids[id(b)]})"),
                     ("relate", f"_,{REL_WORDS[rel]},s ({object_ids[id(a)]})"), ("query", "name")],
                    {"global": a.category.supercategory, "local": f"14-{b.name}_{rel},s"}, {b_name: object_ids[id(b)]})

    def rel_chooser() -> dict | None:
        pairs = clear_pairs(scene, horizontal=True)
        if not pairs:
            return None
        a, b, rel = rng.choice(pairs)
        a_name, b_name = ref(scene, a), ref(scene, b)
        side = DIRECTIONS[rel]
        return _gqa("relChooser", "choose", "rel", f"Is the {a_name} to the left or to the right of the {b_name}?",
                    side, f"The {a_name} is to the {side} of the {b_name}.",
                    [("select", f"{b.name} ({object_ids[id(b)]})"),
                     ("choose rel", f"{a.name},to the left of|to the right of,o ({object_ids[id(a)]})")],
                    {"global": None, "local": f"12-{a.name}_{b.name}"},
                    {a_name: object_ids[id(a)], b_name: object_ids[id(b)]})

    def position_query() -> dict | None:
        side = side_of_image(scene, obj)
        if side is None:
            return None
        return _gqa("positionQuery", "query", "attr", f"On which side of the image is the {name}?", side,
                    f"The {name} is on the {side} of the image.", [select, ("query", "hposition")],
                    {"global": "hposition", "local": f"10q-{obj.name}_hposition"}, {name: oid})

    record = _first_fit(rng, [direct_of, exist_obj, choose_attr, verify_attr, rel_s, rel_s, rel_chooser,
                              position_query])
    record["imageId"] = str(scene.image_id)
    return record


def _gqa(detailed: str, structural: str, semantic: str, question: str, answer: str, full: str,
         ops: list[tuple[str, str]], groups: dict[str, str | None], pointers: dict[str, str]) -> dict:
    """Assemble the record; `pointers` maps an object's words to its id for the "annotations" field."""
    return {
        "question": question,
        "answer": answer,
        "fullAnswer": full,
        "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
        "isBalanced": True,
        "groups": groups,
        "annotations": {"question": _point(question, pointers), "answer": {}, "fullAnswer": _point(full, pointers)},
        "semantic": [{"operation": op, "argument": arg, "dependencies": [k - 1] if k else []}
                     for k, (op, arg) in enumerate(ops)],
        "semanticStr": "->".join(f"{op}: {arg}" + (f" [{k - 1}]" if k else "") for k, (op, arg) in enumerate(ops)),
    }


def _point(text: str, pointers: dict[str, str]) -> dict[str, str]:
    """GQA's word-index -> object id map: the index of the last word of each object's name in `text`."""
    words = [w.strip("?.,").lower() for w in text.split()]
    found = {}
    for phrase, oid in pointers.items():
        last = phrase.split()[-1]
        n = len(phrase.split())
        for i in range(len(words) - n + 1):
            if words[i : i + n] == phrase.split():
                found[str(i + n - 1)] = oid
                break
        else:
            if last in words:
                found[str(words.index(last))] = oid
    return found
