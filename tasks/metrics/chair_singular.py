"""Noun singularisation as CHAIR's reference does it: a re-implementation of `pattern.en.singularize`.

The CHAIR reference (LisaAnne/Hallucination `utils/chair.py`, requirements.txt: pattern==3.6) singularises
every token with pattern's rule-based `singularize`. pattern is hard to install today, so this module
re-implements that function from its published rule tables (pattern 3.6, `pattern/text/en/inflect.py`,
unchanged since 2017-08-24), step for step:

1. a hyphenated word whose second part is a preposition ("mothers-in-law") singularises its first part;
2. a word ending in an apostrophe ("dogs'") becomes singular + "'s";
3. a word that is a *suffix* of an uninflected or uncountable noun is returned unchanged - note the
   direction: "ice" ("advice"), "ears" ("shears"), "s", "es" all stay as they are;
4. a word ending in <word>+"s" for the "-ie" nouns ("doggies", "collies") is returned unchanged - pattern
   meant to strip the "s" but returns the plural (so "doggies" never becomes "doggie"); the list's "^tie"
   and "^pie" are literal strings that no word ends with;
5. irregular plurals are matched as suffixes: "women" -> "woman", "grandchildren" -> "grandchild", but also
   "your" -> "ymy" (the table maps "our" -> "my") and "taxes" -> "taxe" ("axes" -> "axe");
6. otherwise the first matching regular-expression rule, the last one being "drop a final s" - which is
   why "bus" -> "bu", "glass" -> "glas", "tennis" -> "tenni", "canoes" -> "cano" ("(o)es$" -> "o"),
   "ties" -> "ty" and "magpies" -> "magpy" ("([^aeiouy]|qu)ies$" -> "y").

Where this can differ from pattern itself: pattern 3.6 ran under Python 2 in the reference; its `(?i)`
rules then folded ASCII case only, here Unicode case (irrelevant: CHAIR lower-cases first). pattern 2.6
(Python-2-only) differed in three table entries glued together by missing commas ("wildebeest" "carp",
"water" "cheese", "zombie" "bogie"); we follow 3.6, the version the reference pins, so "zombies" and "bogies"
stay unchanged here where 2.6 gave "zombie" and "bogy". No other difference is known.

`singularize_fixed` is the variant used by CHAIR's "fixed" mode: the same rules, except that the -ie nouns
lose their "s", words ending in -ss are already singular, and the CHAIR words the rules mangle ("bus",
"tennis", "ties", "canoes", "magpies", "thieves", ...) are listed.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Step 1: "x-in-law" style compounds recurse only when the second part is one of these.
_PREPOSITIONS = frozenset(
    "about above across after among around at athwart before behind below beneath beside besides between "
    "betwixt beyond but by during except for from in into near of off on onto out over since till to "
    "under until unto upon with".split()
)

# Step 3: words (and every suffix of them) that pattern never changes.
_UNINFLECTED = (
    "bison bream breeches britches carp chassis christmas clippers cod contretemps corps debris diabetes djinn "
    "eland elk flounder gallows georgia graffiti headquarters herpes high-jinks homework innings jackanapes "
    "mackerel measles mews mumps news pincers pliers proceedings rabies salmon scissors series shears "
    "species swine swiss trout tuna whiting wildebeest"
).split()
_UNCOUNTABLE = (
    "advice bread butter cheese electricity equipment fruit furniture garbage gravel happiness information "
    "ketchup knowledge love luggage mathematics mayonnaise meat mustard news progress research rice sand "
    "software understanding water"
).split()

# Step 4: nouns whose singular ends in -ie ("^pie", "^tie" are kept literally: they match nothing).
_IE_NOUNS = (
    "alergie auntie beanie birdie bogie bombie collie cookie cutie doggie eyrie freebie goonie groupie "
    "hankie hippie hoagie hottie indie junkie laddie laramie lingerie meanie newbie nightie oldie pixie "
    "quickie reverie rookie softie sortie stoolie sweetie techie toughie valkyrie veggie weenie yuppie "
    "zombie ^pie ^tie"
).split()

# Step 5: irregular plural suffix -> singular suffix (no key is a suffix of another, so order is moot).
_IRREGULAR = {
    "atlantes": "atlas", "atlases": "atlas", "axes": "axe", "beeves": "beef", "brethren": "brother",
    "children": "child", "corpora": "corpus", "corpuses": "corpus", "ephemerides": "ephemeris",
    "feet": "foot", "ganglia": "ganglion", "geese": "goose", "genera": "genus", "genii": "genie",
    "graffiti": "graffito", "helves": "helve", "kine": "cow", "leaves": "leaf", "loaves": "loaf",
    "men": "man", "mongooses": "mongoose", "monies": "money", "moves": "move", "mythoi": "mythos",
    "numena": "numen", "occipita": "occiput", "octopodes": "octopus", "opera": "opus", "opuses": "opus",
    "our": "my", "oxen": "ox", "penes": "penis", "penises": "penis", "people": "person", "sexes": "sex",
    "soliloquies": "soliloquy", "teeth": "tooth", "testes": "testis", "trilbys": "trilby", "turves": "turf",
    "zoa": "zoon",
}

# Step 6: (pattern, replacement), first match wins. Written exactly as pattern has them, oddities
# included: "[octop|vir]" and "[m|l]" are character classes, "^(ox)en" has no end anchor, and the
# -ves rules without (?i) are case-sensitive. An unmatched group is replaced by "" (as pattern does).
_RULES = [(re.compile(p), r) for p, r in (
    (r"(?i)(.)ae$", r"\1a"),
    (r"(?i)(.)itis$", r"\1itis"),
    (r"(?i)(.)eaux$", r"\1eau"),
    (r"(?i)(quiz)zes$", r"\1"),
    (r"(?i)(matr)ices$", r"\1ix"),
    (r"(?i)(ap|vert|ind)ices$", r"\1ex"),
    (r"(?i)^(ox)en", r"\1"),
    (r"(?i)(alias|status)es$", r"\1"),
    (r"(?i)([octop|vir])i$", r"\1us"),
    (r"(?i)(cris|ax|test)es$", r"\1is"),
    (r"(?i)(shoe)s$", r"\1"),
    (r"(?i)(o)es$", r"\1"),
    (r"(?i)(bus)es$", r"\1"),
    (r"(?i)([m|l])ice$", r"\1ouse"),
    (r"(?i)(x|ch|ss|sh)es$", r"\1"),
    (r"(?i)(m)ovies$", r"\1ovie"),
    (r"(?i)(.)ombies$", r"\1ombie"),
    (r"(?i)(s)eries$", r"\1eries"),
    (r"(?i)([^aeiouy]|qu)ies$", r"\1y"),
    (r"([aeo]l)ves$", r"\1f"),
    (r"([^d]ea)ves$", r"\1f"),
    (r"arves$", "arf"),
    (r"erves$", "erve"),
    (r"([nlw]i)ves$", r"\1fe"),
    (r"(?i)([lr])ves$", r"\1f"),
    (r"([aeo])ves$", r"\1ve"),
    (r"(?i)(sive)s$", r"\1"),
    (r"(?i)(tive)s$", r"\1"),
    (r"(?i)(hive)s$", r"\1"),
    (r"(?i)([^f])ves$", r"\1fe"),
    (r"(?i)(^analy)ses$", r"\1sis"),
    (r"(?i)((a)naly|(b)a|(d)iagno|(p)arenthe|(p)rogno|(s)ynop|(t)he)ses$", r"\1\2sis"),
    (r"(?i)(.)opses$", r"\1opsis"),
    (r"(?i)(.)yses$", r"\1ysis"),
    (r"(?i)(h|d|r|o|n|b|cl|p)oses$", r"\1ose"),
    (r"(?i)(fruct|gluc|galact|lact|ket|malt|rib|sacchar|cellul)ose$", r"\1ose"),
    (r"(?i)(.)oses$", r"\1osis"),
    (r"(?i)([ti])a$", r"\1um"),
    (r"(?i)(n)ews$", r"\1ews"),
    (r"(?i)s$", ""),
)]


@lru_cache(maxsize=200_000)
def singularize(word: str) -> str:
    """pattern 3.6's `singularize(word)` (noun, no custom table), quirks included; see the module doc."""
    if "-" in word:
        parts = word.split("-")
        if parts[1] in _PREPOSITIONS:
            return singularize(parts[0]) + "-" + "-".join(parts[1:])
    if word.endswith("'"):
        return singularize(word[:-1]) + "'s"
    lower = word.lower()
    if any(noun.endswith(lower) for noun in _UNINFLECTED) or any(noun.endswith(lower) for noun in _UNCOUNTABLE):
        return word
    if any(lower.endswith(noun + "s") for noun in _IE_NOUNS):
        return lower
    for plural, single in _IRREGULAR.items():
        if lower.endswith(plural):
            return re.sub("(?i)" + plural + "$", single, word)
    for pattern, replacement in _RULES:
        if pattern.search(word):
            return pattern.sub(replacement, word)
    return word


# Words the fixed variant maps directly: singulars ending in -us/-is that the final "drop the s" rule cuts
# ("bus" -> "bu"), the exact words "ties"/"pies" that pattern's literal "^tie"/"^pie" entries meant to
# catch, and CHAIR plurals whose rule gives a wrong singular ("canoes" -> "cano", "magpies" -> "magpy",
# "thieves" -> "thieve").
_FIXED_WORDS = {
    "bus": "bus", "minibus": "minibus", "airbus": "airbus", "omnibus": "omnibus", "trolleybus": "trolleybus",
    "tennis": "tennis", "ties": "tie", "pies": "pie", "canoes": "canoe", "magpies": "magpie", "thieves": "thief",
}
_IE_PLURALS = tuple(noun + "s" for noun in _IE_NOUNS if not noun.startswith("^"))


@lru_cache(maxsize=200_000)
def singularize_fixed(word: str) -> str:
    """`singularize` without the quirks that hide CHAIR objects (used by CHAIR's "fixed" mode).

    Differences: the words in `_FIXED_WORDS` ("bus" stays "bus", "ties" -> "tie", "canoes" -> "canoe");
    a word ending in -ss is already singular ("glass" stays "glass", "glasses" still -> "glass"); plurals of
    the "-ie" nouns lose their "s" ("doggies" -> "doggie", "collies" -> "collie"). Everything else is
    `singularize`.
    """
    lower = word.lower()
    if lower in _FIXED_WORDS:
        return _FIXED_WORDS[lower]
    if lower.endswith("ss"):
        return word
    if lower.endswith(_IE_PLURALS):
        return lower[:-1]
    return singularize(word)
