"""Reference data about the real COCO vocabulary, copied into the package so nothing is read at run time.

- `COCO_CATEGORIES`: the 80 instance categories as (id, name, supercategory), with COCO's real ids
  (they skip 12, 26, 29, 30, 45, 66, 68, 69, 71 and 83).
- `CHAIR_SYNONYMS`: category name -> the other words CHAIR (Rohrbach et al. 2018) maps to it, a normalised
  copy of the reference synonym list: duplicates dropped and stray spaces stripped. The reference's
  quirks (two entries that start with a space and never match) are the CHAIR metric's business, not
  this table's: the world generator only uses it to pick mention words and to keep its text clean of
  categories that are not in the picture (`mentioned_categories`).
"""

from __future__ import annotations

import re

COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"), (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"), (41, "skateboard", "sports"), (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"), (44, "bottle", "kitchen"), (46, "wine glass", "kitchen"),
    (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"), (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"),
    (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"), (58, "hot dog", "food"),
    (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"), (62, "chair", "furniture"),
    (63, "couch", "furniture"), (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"),
    (73, "laptop", "electronic"), (74, "mouse", "electronic"), (75, "remote", "electronic"),
    (76, "keyboard", "electronic"), (77, "cell phone", "electronic"), (78, "microwave", "appliance"),
    (79, "oven", "appliance"), (80, "toaster", "appliance"), (81, "sink", "appliance"),
    (82, "refrigerator", "appliance"), (84, "book", "indoor"), (85, "clock", "indoor"), (86, "vase", "indoor"),
    (87, "scissors", "indoor"), (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
)

CHAIR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": (
        "girl", "boy", "man", "woman", "kid", "child", "chef", "baker", "people", "adult", "rider", "children",
        "baby", "worker", "passenger", "sister", "biker", "policeman", "cop", "officer", "lady", "cowboy", "bride",
        "groom", "male", "female", "guy", "traveler", "mother", "father", "gentleman", "pitcher", "player", "skier",
        "snowboarder", "skater", "skateboarder", "foreigner", "caller", "offender", "coworker", "trespasser",
        "patient", "politician", "soldier", "grandchild", "serviceman", "walker", "drinker", "doctor", "bicyclist",
        "thief", "buyer", "teenager", "student", "camper", "driver", "solider", "hunter", "shopper", "villager",
    ),
    "bicycle": ("bike", "unicycle", "minibike", "trike"),
    "car": (
        "automobile", "van", "minivan", "sedan", "suv", "hatchback", "cab", "jeep", "coupe", "taxicab", "limo",
        "taxi",
    ),
    "motorcycle": ("scooter", "motor bike", "motor cycle", "motorbike", "moped"),
    "airplane": ("jetliner", "plane", "air plane", "monoplane", "aircraft", "jet", "airbus", "biplane", "seaplane"),
    "bus": ("minibus", "trolley"),
    "train": ("locomotive", "tramway", "caboose"),
    "truck": ("pickup", "lorry", "hauler", "firetruck"),
    "boat": (
        "ship", "liner", "sailboat", "motorboat", "dinghy", "powerboat", "speedboat", "canoe", "skiff", "yacht",
        "kayak", "catamaran", "pontoon", "houseboat", "vessel", "rowboat", "trawler", "ferryboat", "watercraft",
        "tugboat", "schooner", "barge", "ferry", "sailboard", "paddleboat", "lifeboat", "freighter", "steamboat",
        "riverboat", "battleship", "steamship",
    ),
    "traffic light": ("street light", "traffic signal", "stop light", "streetlight", "stoplight"),
    "fire hydrant": ("hydrant",),
    "stop sign": (),
    "parking meter": (),
    "bench": ("pew",),
    "bird": (
        "ostrich", "owl", "seagull", "goose", "duck", "parakeet", "falcon", "robin", "pelican", "waterfowl", "heron",
        "hummingbird", "mallard", "finch", "pigeon", "sparrow", "seabird", "osprey", "blackbird", "fowl", "shorebird",
        "woodpecker", "egret", "chickadee", "quail", "bluebird", "kingfisher", "buzzard", "willet", "gull", "swan",
        "bluejay", "flamingo", "cormorant", "parrot", "loon", "gosling", "waterbird", "pheasant", "rooster",
        "sandpiper", "crow", "raven", "turkey", "oriole", "cowbird", "warbler", "magpie", "peacock", "cockatiel",
        "lorikeet", "puffin", "vulture", "condor", "macaw", "peafowl", "cockatoo", "songbird",
    ),
    "cat": ("kitten", "feline", "tabby"),
    "dog": (
        "puppy", "beagle", "pup", "chihuahua", "schnauzer", "dachshund", "rottweiler", "canine", "pitbull", "collie",
        "pug", "terrier", "poodle", "labrador", "doggie", "doberman", "mutt", "doggy", "spaniel", "bulldog",
        "sheepdog", "weimaraner", "corgi", "cocker", "greyhound", "retriever", "brindle", "hound", "whippet", "husky",
    ),
    "horse": (
        "colt", "pony", "racehorse", "stallion", "equine", "mare", "foal", "palomino", "mustang", "clydesdale",
        "bronc", "bronco",
    ),
    "sheep": ("lamb", "ram", "goat", "ewe"),
    "cow": ("cattle", "oxen", "ox", "calf", "holstein", "heifer", "buffalo", "bull", "zebu", "bison"),
    "elephant": (),
    "bear": ("panda",),
    "zebra": (),
    "giraffe": (),
    "backpack": ("knapsack",),
    "umbrella": (),
    "handbag": ("wallet", "purse", "briefcase"),
    "tie": ("bow", "bow tie"),
    "suitcase": ("suit case", "luggage"),
    "frisbee": (),
    "skis": ("ski",),
    "snowboard": (),
    "sports ball": ("ball",),
    "kite": (),
    "baseball bat": (),
    "baseball glove": (),
    "skateboard": (),
    "surfboard": ("longboard", "skimboard", "shortboard", "wakeboard"),
    "tennis racket": ("racket",),
    "bottle": (),
    "wine glass": (),
    "cup": (),
    "fork": (),
    "knife": ("pocketknife", "knive"),
    "spoon": (),
    "bowl": ("container",),
    "banana": (),
    "apple": (),
    "sandwich": ("burger", "sub", "cheeseburger", "hamburger"),
    "orange": (),
    "broccoli": (),
    "carrot": (),
    "hot dog": (),
    "pizza": (),
    "donut": ("doughnut", "bagel"),
    "cake": ("cheesecake", "cupcake", "shortcake", "coffeecake", "pancake"),
    "chair": ("seat", "stool"),
    "couch": ("sofa", "recliner", "futon", "loveseat", "settee", "chesterfield"),
    "potted plant": ("houseplant",),
    "bed": (),
    "dining table": ("table", "desk"),
    "toilet": ("urinal", "commode", "lavatory", "potty"),
    "tv": ("monitor", "televison", "television"),
    "laptop": ("computer", "notebook", "netbook", "lenovo", "macbook", "laptop computer"),
    "mouse": (),
    "remote": (),
    "keyboard": (),
    "cell phone": ("mobile phone", "phone", "cellphone", "telephone", "phon", "smartphone", "iPhone"),
    "microwave": (),
    "oven": ("stovetop", "stove", "stove top oven"),
    "toaster": (),
    "sink": (),
    "refrigerator": ("fridge", "freezer"),
    "book": (),
    "clock": (),
    "vase": (),
    "scissors": (),
    "teddy bear": ("teddybear",),
    "hair drier": ("hairdryer",),
    "toothbrush": (),
}

# word -> category, and the two-word names that must be read as one word ("hot dog" is not a dog).
WORD_TO_CATEGORY: dict[str, str] = {}
for _name, _others in CHAIR_SYNONYMS.items():
    for _word in (_name, *_others):
        WORD_TO_CATEGORY.setdefault(_word.lower(), _name)
TWO_WORD_NAMES: tuple[str, ...] = tuple(sorted(w for w in WORD_TO_CATEGORY if " " in w))
_IRREGULAR_PLURALS = {"people": "person", "men": "man", "women": "woman", "children": "child", "sheep": "sheep",
                      "mice": "mouse", "knives": "knife", "ponies": "pony", "puppies": "puppy", "buses": "bus"}


def _singular(word: str) -> str:
    if word in WORD_TO_CATEGORY or word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS.get(word, word)
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and word[: -len(suffix)] + replacement in WORD_TO_CATEGORY:
            return word[: -len(suffix)] + replacement
    return word


def mentioned_categories(text: str) -> set[str]:
    """COCO categories a CHAIR-like reading finds in `text`: words singularised, two-word names merged.

    A simplified stand-in for the metric (no nltk or pattern), used to check generated text: every
    category it finds must be an object of the scene.
    """
    words = [_singular(w) for w in re.findall(r"[a-z]+", text.lower())]
    found: set[str] = set()
    i = 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        if pair in WORD_TO_CATEGORY:
            found.add(WORD_TO_CATEGORY[pair])
            i += 2
            continue
        if words[i] in WORD_TO_CATEGORY:
            found.add(WORD_TO_CATEGORY[words[i]])
        i += 1
    return found
