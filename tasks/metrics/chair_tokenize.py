"""Word tokenisation as CHAIR's reference does it: an offline equivalent of `nltk.word_tokenize`.

The CHAIR reference (requirements.txt: nltk==3.2.5) calls `nltk.word_tokenize(caption.lower())`, which is

1. Punkt sentence splitting with the pre-trained English model (`tokenizers/punkt/english.pickle`), then
2. the Treebank word tokenizer on each sentence, with the three "improved" rules nltk 3.2.5's
   `word_tokenize` adds (curly/guillemet quotes split off; a final period before closing quotes split off).

Step 2 is reproduced here rule for rule (nltk 3.2.5 `TreebankWordTokenizer` plus those rules). The rules nltk
compiled without `re.UNICODE` ran under Python 2, where `\\s`, `\\d` and `\\b` are ASCII-only: they are
compiled with `re.ASCII` here so non-ASCII spaces and digits behave as they did.

Step 1 needs the Punkt model, a data package that cannot be downloaded at run time, so `split_sentences`
re-implements Punkt's decision procedure (candidate = a token ending in . ? ! followed by whitespace or
punctuation; realignment of closing quotes/brackets) with these stand-ins for the model's learned tables:

- abbreviations: the short list `ABBREVIATIONS` below instead of the model's learned list;
- collocations: none (the model knows pairs such as a number followed by a month name);
- orthographic context: none. On lower-cased text (CHAIR always lower-cases) this gives the model's answer
  for practically every word: a single letter or a number followed by a lower-case word is not a sentence
  end, a sentence-final abbreviation never is, and any other "word." followed by a space is.

What a different break decision changes is, as far as we can see, only whether the token before the period
keeps it ("dog." vs "dog", "."): Treebank splits "?", "!", "...", brackets and quotes everywhere anyway. So
CHAIR can only differ from the reference where a word that matters to CHAIR (an object word, or a word of
one of its phrases) is one of the model's abbreviations or collocations but not ours, or the other way
round; we know of none. With the same tables, `split_sentences` and `word_tokenize` agreed with nltk 3.2.5's
own Punkt and Treebank code on 55,000 random strings of tricky fragments, and the whole CHAIR pipeline with
nltk 3.2.5 + pattern 3.6's rules on 30,000 random captions (checked once while writing this module).
"""

from __future__ import annotations

import re

# --- Punkt (sentence splitting) -------------------------------------------------------------------------

# Common English abbreviations Punkt's English model knows (lower case, without the final period).
ABBREVIATIONS = frozenset(
    "a.m p.m e.g i.e etc vs mr mrs ms dr st jr sr prof inc ltd co corp jan feb mar apr jun jul aug sep sept "
    "oct nov dec u.s u.k mt ft gen col lt sgt capt rep sen gov rev ave blvd no".split()
)

_NON_WORD = r"""[?!)";}\]*:@'({\[]"""
_MULTI_CHAR = r"(?:-{2,}|\.{2,}|(?:\.\s){2,}\.)"
# A candidate sentence end: some word material, a sentence-end character, then punctuation or a next token.
_CANDIDATE = re.compile(rf"\S*[.?!](?=(?P<after>{_NON_WORD}|\s+(?P<next>\S+)))")
# Punkt's word tokenizer, used only to classify the tokens around a candidate.
_PUNKT_WORD = re.compile(
    rf"""{_MULTI_CHAR}
    | (?=[^(\"`{{\[:;&\#*@)}}\]\-,])\S+?
      (?=\s|$|{_NON_WORD}|{_MULTI_CHAR}|,(?=$|\s|{_NON_WORD}|{_MULTI_CHAR}))
    | \S""",
    re.VERBOSE,
)
_NUMBER = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$", re.ASCII)
_INITIAL = re.compile(r"[^\W\d]\.$")
_ELLIPSIS = re.compile(r"\.\.+$")
_REALIGN = re.compile(r"""["')\]}]+?(?:\s+|(?=--)|$)""", re.MULTILINE)


def _is_break_token(token: str) -> bool:
    """Punkt's first pass: does this token end a sentence (before looking at the next one)?"""
    if token in (".", "?", "!"):
        return True
    if _ELLIPSIS.match(token) or not token.endswith(".") or token.endswith(".."):
        return False
    stem = token[:-1].lower()
    return stem not in ABBREVIATIONS and stem.split("-")[-1] not in ABBREVIATIONS


def _keeps_break(token: str, next_token: str) -> bool:
    """Punkt's second pass for a break token: an initial ("j.") or a number ("2.") is an abbreviation after
    all when the orthographic heuristic says the next token starts no sentence. With no orthographic data
    that is: one of ; : , . ! ? or a lower-case word next; an initial followed by an upper-case word too."""
    if not (_INITIAL.match(token) or _NUMBER.match(token)):
        return True
    if next_token in ";:,.!?" or next_token[:1].islower():
        return False
    return not (_INITIAL.match(token) and next_token[:1].isupper())


def _contains_break(context: str) -> bool:
    tokens = _PUNKT_WORD.findall(context)
    for token, next_token in zip(tokens, tokens[1:], strict=False):
        if _is_break_token(token) and _keeps_break(token, next_token):
            return True
    return False


def split_sentences(text: str) -> list[str]:
    """Sentences as Punkt (nltk 3.2.5 `PunktSentenceTokenizer.tokenize`) splits them, with our stand-in tables."""
    slices, start = [], 0
    for match in _CANDIDATE.finditer(text):
        if _contains_break(match.group() + match.group("after")):
            slices.append((start, match.end()))
            start = match.start("next") if match.group("next") else match.end()
    slices.append((start, len(text.rstrip())))
    # Closing quotes/brackets right after a break belong to the sentence before it.
    sentences, shift = [], 0
    for i, (begin, end) in enumerate(slices):
        begin += shift
        if i + 1 == len(slices):
            if text[begin:end]:
                sentences.append(text[begin:end])
            break
        following = text[slices[i + 1][0]:slices[i + 1][1]]
        realign = _REALIGN.match(following)
        if realign:
            sentences.append(text[begin:slices[i + 1][0] + len(realign.group().rstrip())])
            shift = realign.end()
        else:
            shift = 0
            if text[begin:end]:
                sentences.append(text[begin:end])
    return sentences


# --- Treebank (words within a sentence) ------------------------------------------------------------------

_A = re.ASCII  # nltk compiled these without re.UNICODE, under Python 2
_STARTING_QUOTES = [
    (re.compile("([«“‘])"), r" \1 "),  # added by word_tokenize
    (re.compile(r'^"', _A), "``"),
    (re.compile("(``)", _A), r" \1 "),
    (re.compile(r'([ (\[{<])"', _A), r"\1 `` "),
]
_PUNCTUATION = [
    (re.compile(r"""([^\.])(\.)([\]\)}>"'»”’ ]*)\s*$"""), r"\1 \2 \3 "),  # added by word_tokenize
    (re.compile(r"([:,])([^\d])", _A), r" \1 \2"),
    (re.compile(r"([:,])$", _A), r" \1 "),
    (re.compile(r"\.\.\.", _A), " ... "),
    (re.compile(r"[;@#$%&]", _A), r" \g<0> "),
    (re.compile(r"""([^\.])(\.)([\]\)}>"']*)\s*$""", _A), r"\1 \2\3 "),
    (re.compile(r"[?!]", _A), r" \g<0> "),
    (re.compile(r"([^'])' ", _A), r"\1 ' "),
]
_PARENS = (re.compile(r"[\]\[\(\)\{\}\<\>]", _A), r" \g<0> ")
_DASHES = (re.compile("--", _A), " -- ")
_ENDING_QUOTES = [
    (re.compile("([»”’])"), r" \1 "),  # added by word_tokenize
    (re.compile('"', _A), " '' "),
    (re.compile(r"(\S)('')", _A), r"\1 \2 "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') ", _A), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", _A), r"\1 \2 "),
]
_CONTRACTIONS = [re.compile(p, _A) for p in (
    r"(?i)\b(can)(not)\b", r"(?i)\b(d)('ye)\b", r"(?i)\b(gim)(me)\b", r"(?i)\b(gon)(na)\b",
    r"(?i)\b(got)(ta)\b", r"(?i)\b(lem)(me)\b", r"(?i)\b(mor)('n)\b", r"(?i)\b(wan)(na)\s",
    r"(?i) ('t)(is)\b", r"(?i) ('t)(was)\b",
)]


def treebank_words(sentence: str) -> list[str]:
    """nltk 3.2.5's Treebank tokenizer as `word_tokenize` configures it, on one sentence."""
    text = sentence
    for pattern, replacement in _STARTING_QUOTES + _PUNCTUATION + [_PARENS, _DASHES]:
        text = pattern.sub(replacement, text)
    text = " " + text + " "
    for pattern, replacement in _ENDING_QUOTES:
        text = pattern.sub(replacement, text)
    for pattern in _CONTRACTIONS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)` (nltk 3.2.5, English) without the Punkt data package; see the module doc."""
    return [word for sentence in split_sentences(text) for word in treebank_words(sentence)]
