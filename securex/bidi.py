"""Right-to-left text for views that draw every line left to right. Pure functions.

Tk 8.6 has no bidirectional layout: it draws a line's characters left to right
in the order they are stored, so Hebrew and Arabic come out reversed and Arabic
letters come out unjoined. The desktop's read-only views pass each line through
``visual_line``, which returns the characters in the order to draw them:

* Arabic letters are replaced by their contextual presentation forms (isolated,
  initial, medial, final, and the lam-alef ligatures), worked out in typing
  order, as a shaping engine would (the forms come from Unicode's own
  decompositions in ``unicodedata``, not from a hand-made table);
* the line is then reordered by the implicit part of the Unicode Bidirectional
  Algorithm (UAX #9): the paragraph direction from the first strong letter
  (P2-P3), weak types (W1-W7), neutrals (N1-N2), levels (I1-I2), trailing
  whitespace (L1), reversal (L2) with combining marks kept after their base
  (L3), and mirrored characters (L4: brackets, and signs such as ≪ or ⊂
  whose mirror image is named for the other direction).

Left out on purpose: explicit embeddings, overrides and isolates (X1-X10), since
``text.display_safe`` turns every bidi control into U+FFFD before a member's
text is shown, so any that arrive here are treated as neutrals; and bracket
pairing (N0), so a bracket takes its direction from the text around it like any
other neutral.

What is stored, sent and copied stays in typing order: ``VisualLine.spans`` maps
each drawn character back to the typed characters it stands for.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_STRONG_RTL = frozenset({"R", "AL"})
_NEUTRALS = frozenset({"B", "S", "WS", "ON"})
# Explicit formatting classes are not implemented (see above): treated as neutrals.
_EXPLICIT = frozenset({"LRE", "LRO", "RLE", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})
_RESET_AT_END = frozenset({"WS", "BN"}) | _EXPLICIT      # L1: back to the paragraph level before a tab or the end
# L4: brackets and the like drawn as their mirror image at a right-to-left level.
_MIRROR_PAIRS = "()<>[]{}\u00ab\u00bb\u2039\u203a\u2045\u2046\u207d\u207e\u208d\u208e\u2264\u2265\u3008\u3009"
_MIRRORS = {a: b for a, b in zip(_MIRROR_PAIRS[::2], _MIRROR_PAIRS[1::2], strict=True)}
_MIRRORS.update({b: a for a, b in _MIRRORS.items()})
# Most other mirrored characters (Bidi_Mirrored) are named for their direction: the
# mirror image has the other word in its name (≪ MUCH LESS-THAN, ≫ MUCH GREATER-THAN).
_MIRROR_WORDS = (("LEFT", "RIGHT"), ("LESS", "GREATER"), ("SUBSET", "SUPERSET"), ("PRECEDES", "SUCCEEDS"),
                 ("ELEMENT OF", "CONTAINS AS MEMBER"), ("OPENING", "CLOSING"))

_TATWEEL = "\u0640"
_ZWJ = "\u200d"
_LAM = "\u0644"
_ALEFS = "\u0622\u0623\u0625\u0627"     # with lam before them, one ligature is obligatory


@dataclass(frozen=True)
class VisualLine:
    """One line in drawing order. ``spans[i]`` is the (start, end) range of the
    typed line that drawn character ``i`` stands for (two characters for a
    lam-alef ligature, one otherwise)."""
    text: str
    spans: tuple[tuple[int, int], ...]
    right_to_left: bool          # the paragraph's direction (its first strong letter)


_REORDERED = _STRONG_RTL | {"AN"}       # letters, and Arabic digits (drawn right to left among themselves)


def needs_reordering(text: str) -> bool:
    """True if ``text`` has a right-to-left letter or an Arabic digit (fast: most text has none)."""
    return any(unicodedata.bidirectional(ch) in _REORDERED for ch in text if ord(ch) >= 0x0590)


def visual_line(line: str, *, right_to_left: bool | None = None) -> VisualLine:
    """``line`` (no newline) in the order to draw it left to right. Its direction is
    that of its first strong letter unless ``right_to_left`` says."""
    return visual_pieces(line, [0], right_to_left=right_to_left)[0]


def visual_pieces(line: str, starts: list[int], *, right_to_left: bool | None = None) -> list[VisualLine]:
    """``line`` broken into screen lines that begin at the typed offsets ``starts``
    (the first 0; never inside a lam-alef pair), each in drawing order. The levels
    are resolved once for the whole line, then each piece is reordered on its own
    (UAX #9 rules L1-L2 are per screen line), so where a line wraps does not change
    how it reads."""
    if not needs_reordering(line):
        ends = [*starts[1:], len(line)]
        return [VisualLine(line[a:b], tuple((i, i + 1) for i in range(a, b)), bool(right_to_left))
                for a, b in zip(starts, ends, strict=True)]
    shaped, spans = _shape_arabic(line)
    classes = [_bidi_class(ch) for ch in shaped]
    rtl_paragraph = _paragraph_is_rtl(classes) if right_to_left is None else right_to_left
    paragraph = 1 if rtl_paragraph else 0
    levels = _resolve_levels(classes, paragraph)
    pieces, first = [], 0
    bounds = [*starts[1:], len(line)]
    for end in bounds:      # shaped indices of each piece: its typed characters, in order
        last = first
        while last < len(shaped) and spans[last][0] < end:
            last += 1
        piece_levels = _reset_trailing_whitespace(classes[first:last], levels[first:last], paragraph)
        order = [first + i for i in _visual_order(shaped[first:last], piece_levels)]
        text = "".join(_mirror(shaped[i]) if piece_levels[i - first] % 2 else shaped[i]
                       for i in order)
        pieces.append(VisualLine(text, tuple(spans[i] for i in order), rtl_paragraph))
        first = last
    return pieces


def drawn(text: str) -> str:
    """``text`` in drawing order, line by line, for a label (nothing maps it back)."""
    if not needs_reordering(text):
        return text
    return "\n".join(visual_line(line).text for line in text.split("\n"))


def logical_indices(visual: VisualLine, start: int, end: int) -> list[int]:
    """The typed line's indices that drawn characters ``start:end`` stand for, in
    typing order: what to copy when that part of the drawn line is selected."""
    indices = {i for first, last in visual.spans[start:end] for i in range(first, last)}
    return sorted(indices)


# -- the bidirectional algorithm (implicit rules only) ---------------------------------------

def _bidi_class(ch: str) -> str:
    bidi = unicodedata.bidirectional(ch)
    if not bidi:            # unassigned
        return "L"
    return "ON" if bidi in _EXPLICIT else bidi


def _paragraph_is_rtl(classes: list[str]) -> bool:
    for bidi in classes:     # P2-P3: the first strong letter decides
        if bidi == "L":
            return False
        if bidi in _STRONG_RTL:
            return True
    return False


def _resolve_levels(classes: list[str], paragraph: int) -> list[int]:
    """The embedding level of every character (rules W1-W7, N1-N2, I1-I2). Boundary
    neutrals (zero-width joiners and the like) take no part (X9) and get the level
    of the character before them, so one cannot split a number or steer a neutral."""
    kept = [i for i, bidi in enumerate(classes) if bidi != "BN"]
    kept_levels = _resolve_kept([classes[i] for i in kept], paragraph)
    levels = [paragraph] * len(classes)
    for i, level in zip(kept, kept_levels, strict=True):
        levels[i] = level
    previous = paragraph
    for i, bidi in enumerate(classes):
        if bidi == "BN":
            levels[i] = previous
        previous = levels[i]
    return levels


def _resolve_kept(original: list[str], paragraph: int) -> list[int]:
    sos = "R" if paragraph else "L"
    types = list(original)
    count = len(types)
    # W1: a combining mark takes the type before it.
    for i, bidi in enumerate(types):
        if bidi == "NSM":
            types[i] = types[i - 1] if i else sos
    # W2, W3: European digits after Arabic letters are Arabic numbers; AL is R.
    last_strong = sos
    for i, bidi in enumerate(types):
        if bidi in ("L", "R", "AL"):
            last_strong = bidi
        elif bidi == "EN" and last_strong == "AL":
            types[i] = "AN"
    types = ["R" if bidi == "AL" else bidi for bidi in types]
    # W4: one separator between two numbers of a kind joins them.
    for i in range(1, count - 1):
        before, bidi, after = types[i - 1], types[i], types[i + 1]
        if bidi == "ES" and before == after == "EN":
            types[i] = "EN"
        elif bidi == "CS" and before == after and before in ("EN", "AN"):
            types[i] = before
    # W5: terminators (%, $, ...) next to European digits are digits.
    i = 0
    while i < count:
        if types[i] != "ET":
            i += 1
            continue
        end = i
        while end < count and types[end] == "ET":
            end += 1
        if (i > 0 and types[i - 1] == "EN") or (end < count and types[end] == "EN"):
            types[i:end] = ["EN"] * (end - i)
        i = end
    # W6: what separators are left are neutral.
    types = ["ON" if bidi in ("ES", "ET", "CS") else bidi for bidi in types]
    # W7: European digits after a left-to-right letter are left to right.
    last_strong = sos
    for i, bidi in enumerate(types):
        if bidi in ("L", "R"):
            last_strong = bidi
        elif bidi == "EN" and last_strong == "L":
            types[i] = "L"
    # N1, N2: a run of neutrals between two of one direction takes it (numbers count
    # as right to left); otherwise the paragraph's.
    i = 0
    while i < count:
        if types[i] not in _NEUTRALS:
            i += 1
            continue
        end = i
        while end < count and types[end] in _NEUTRALS:
            end += 1
        before = _strong_direction(types[i - 1]) if i else sos
        after = _strong_direction(types[end]) if end < count else sos
        types[i:end] = [before if before == after else sos] * (end - i)
        i = end
    # I1, I2
    levels = []
    for bidi in types:
        if paragraph % 2 == 0:
            levels.append(paragraph + {"R": 1, "AN": 2, "EN": 2}.get(bidi, 0))
        else:
            levels.append(paragraph + (1 if bidi in ("L", "EN", "AN") else 0))
    return levels


def _reset_trailing_whitespace(classes: list[str], levels: list[int], paragraph: int) -> list[int]:
    """L1 for one screen line: separators, and whitespace before them or at the line's
    end, go back to the paragraph level."""
    levels = list(levels)
    trailing = True
    for i in range(len(classes) - 1, -1, -1):
        bidi = classes[i]
        if bidi == "S":
            levels[i] = paragraph
            trailing = True
        elif trailing and bidi in _RESET_AT_END:
            levels[i] = paragraph
        else:
            trailing = False
    return levels


@lru_cache(maxsize=4096)
def _mirror(ch: str) -> str:
    """L4: the character to draw at a right-to-left level (itself if it has no mirror)."""
    if ch in _MIRRORS or not unicodedata.mirrored(ch):
        return _MIRRORS.get(ch, ch)
    name = unicodedata.name(ch, "")
    for word, other in (*_MIRROR_WORDS, *((b, a) for a, b in _MIRROR_WORDS)):
        if re.search(rf"\b{word}\b", name):
            try:
                return unicodedata.lookup(re.sub(rf"\b{word}\b", other, name))
            except KeyError:
                continue
    return ch


def _strong_direction(bidi: str) -> str:
    return "L" if bidi == "L" else "R"      # R, EN and AN all count as right to left for N1


def _visual_order(text: str, levels: list[int]) -> list[int]:
    """L2 with L3: the indices in drawing order. Reversal works on clusters (a
    character, the combining marks and joiners after it, and what a joiner joins),
    so a mark is still drawn after its base, and an emoji sequence stays whole, in
    a reversed run."""
    clusters: list[list[int]] = []
    for i, ch in enumerate(text):
        if clusters and (_continues_cluster(ch) or (text[i - 1] == _ZWJ and _is_symbol(ch))):
            clusters[-1].append(i)
        else:
            clusters.append([i])
    cluster_levels = [levels[cluster[0]] for cluster in clusters]
    highest = max(cluster_levels, default=0)
    lowest_odd = min((level for level in cluster_levels if level % 2), default=highest + 1)
    for level in range(highest, lowest_odd - 1, -1):
        i = 0
        while i < len(clusters):
            if cluster_levels[i] < level:
                i += 1
                continue
            end = i
            while end < len(clusters) and cluster_levels[end] >= level:
                end += 1
            clusters[i:end] = clusters[i:end][::-1]
            cluster_levels[i:end] = cluster_levels[i:end][::-1]
            i = end
    return [i for cluster in clusters for i in cluster]


def _continues_cluster(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me") or ch in "\u200d\ufe0e\ufe0f"


def _is_symbol(ch: str) -> bool:
    """What a zero-width joiner joins into one emoji: only symbols (a joiner before a
    letter or a digit must not carry it along into another run)."""
    return unicodedata.category(ch) in ("So", "Sk")


# -- Arabic shaping ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Forms:
    isolated: str
    final: str | None
    initial: str | None
    medial: str | None

    @property
    def joins_forward(self) -> bool:
        """Dual-joining: it connects to the letter after it as well as the one before."""
        return self.initial is not None


@lru_cache(maxsize=1)
def _arabic_tables() -> tuple[dict[str, _Forms], dict[tuple[str, str], tuple[str, str]]]:
    """The presentation forms of each Arabic letter, and the lam-alef ligatures
    (isolated, final), read from Unicode's compatibility decompositions."""
    found: dict[str, dict[str, str]] = {}
    ligatures: dict[tuple[str, str], dict[str, str]] = {}
    for code in (*range(0xFB50, 0xFE00), *range(0xFE70, 0xFF00)):
        form = chr(code)
        tag, *bases = unicodedata.decomposition(form).split() or [""]
        tag = tag.strip("<>")
        if tag not in ("isolated", "final", "initial", "medial"):
            continue
        letters = "".join(chr(int(base, 16)) for base in bases)
        if len(letters) == 1:
            found.setdefault(letters, {}).setdefault(tag, form)
        elif len(letters) == 2 and letters[0] == _LAM and letters[1] in _ALEFS:
            ligatures.setdefault((letters[0], letters[1]), {})[tag] = form
    forms = {letter: _Forms(f.get("isolated", letter), f.get("final"), f.get("initial"), f.get("medial"))
             for letter, f in found.items() if unicodedata.bidirectional(letter) == "AL"}
    lam_alef = {pair: (f["isolated"], f["final"]) for pair, f in ligatures.items()
                if "isolated" in f and "final" in f}
    return forms, lam_alef


def _shape_arabic(line: str) -> tuple[str, list[tuple[int, int]]]:
    """``line`` with Arabic letters in their contextual forms, and the typed span
    each output character stands for."""
    forms, lam_alef = _arabic_tables()
    if not any(ch in forms for ch in line):
        return line, [(i, i + 1) for i in range(len(line))]

    # The nearest character each way that is not a combining mark (marks do not break a
    # join), found in one pass each way: a run of marks costs no more than its length.
    transparent = [unicodedata.category(ch) in ("Mn", "Me") for ch in line]
    before: list[str | None] = []
    last: str | None = None
    for ch, mark in zip(line, transparent, strict=True):
        before.append(last)
        if not mark:
            last = ch
    after: list[str | None] = [None] * len(line)
    last = None
    for i in range(len(line) - 1, -1, -1):
        after[i] = last
        if not transparent[i]:
            last = line[i]

    def neighbour(start: int, step: int) -> str | None:
        return before[start] if step < 0 else after[start]

    def joins_forward(ch: str | None) -> bool:
        return ch in (_TATWEEL, _ZWJ) or (ch in forms and forms[ch].joins_forward)

    def joins_backward(ch: str | None) -> bool:
        return ch in (_TATWEEL, _ZWJ) or (ch in forms and forms[ch].final is not None)

    out: list[str] = []
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(line):
        ch = line[i]
        joined_before = joins_forward(neighbour(i, -1))
        if ch == _LAM and i + 1 < len(line) and (ch, line[i + 1]) in lam_alef:
            isolated, final = lam_alef[(ch, line[i + 1])]
            out.append(final if joined_before else isolated)
            spans.append((i, i + 2))
            i += 2
            continue
        shape = forms.get(ch)
        if shape is not None:
            joined_after = shape.joins_forward and joins_backward(neighbour(i, +1))
            if joined_before and joined_after:
                ch = shape.medial or shape.isolated
            elif joined_before:
                ch = shape.final or shape.isolated
            elif joined_after:
                ch = shape.initial or shape.isolated
            else:
                ch = shape.isolated
        out.append(ch)
        spans.append((i, i + 1))
        i += 1
    return "".join(out), spans
