"""Which Latin letter a character passes for, so that two names a reader cannot tell
apart compare equal (``text.name_key``): "Аlice" with a Cyrillic А, "ꓮlice" with a
Lisu one, "B0b" with a zero, "AIice" with a capital I. Not Unicode's whole confusables
table: the letters of the alphabets that mimic Latin ones (Cyrillic, Greek, Armenian,
Cherokee, Lisu) and the few Latin look-alikes (small capitals, l I 1), each checked by
eye where this machine's fonts draw it; what it misses, a safety code still tells apart.
"""

from __future__ import annotations

import unicodedata

# The character's Unicode name -> the Latin letter it passes for.
_PASSES_FOR = {
    # Cyrillic
    "CYRILLIC CAPITAL LETTER A": "A", "CYRILLIC SMALL LETTER A": "a",
    "CYRILLIC CAPITAL LETTER VE": "B",
    "CYRILLIC CAPITAL LETTER ES": "C", "CYRILLIC SMALL LETTER ES": "c",
    "CYRILLIC SMALL LETTER KOMI DE": "d",
    "CYRILLIC CAPITAL LETTER IE": "E", "CYRILLIC SMALL LETTER IE": "e",
    "CYRILLIC CAPITAL LETTER EN": "H", "CYRILLIC CAPITAL LETTER SHHA": "h", "CYRILLIC SMALL LETTER SHHA": "h",
    "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I": "I", "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I": "i",
    "CYRILLIC CAPITAL LETTER JE": "J", "CYRILLIC SMALL LETTER JE": "j",
    "CYRILLIC CAPITAL LETTER KA": "K",
    "CYRILLIC LETTER PALOCHKA": "l", "CYRILLIC SMALL LETTER PALOCHKA": "l",
    "CYRILLIC CAPITAL LETTER EM": "M",
    "CYRILLIC CAPITAL LETTER O": "O", "CYRILLIC SMALL LETTER O": "o",
    "CYRILLIC CAPITAL LETTER ER": "P", "CYRILLIC SMALL LETTER ER": "p",
    "CYRILLIC SMALL LETTER QA": "q",
    "CYRILLIC CAPITAL LETTER DZE": "S", "CYRILLIC SMALL LETTER DZE": "s",
    "CYRILLIC CAPITAL LETTER TE": "T",
    "CYRILLIC SMALL LETTER WE": "w",
    "CYRILLIC CAPITAL LETTER HA": "X", "CYRILLIC SMALL LETTER HA": "x",
    "CYRILLIC CAPITAL LETTER U": "Y", "CYRILLIC SMALL LETTER U": "y",
    # Greek
    "GREEK CAPITAL LETTER ALPHA": "A", "GREEK CAPITAL LETTER BETA": "B", "GREEK CAPITAL LETTER EPSILON": "E",
    "GREEK CAPITAL LETTER ZETA": "Z", "GREEK CAPITAL LETTER ETA": "H", "GREEK CAPITAL LETTER IOTA": "I",
    "GREEK CAPITAL LETTER KAPPA": "K", "GREEK CAPITAL LETTER MU": "M", "GREEK CAPITAL LETTER NU": "N",
    "GREEK CAPITAL LETTER OMICRON": "O", "GREEK CAPITAL LETTER RHO": "P", "GREEK CAPITAL LETTER TAU": "T",
    "GREEK CAPITAL LETTER UPSILON": "Y", "GREEK CAPITAL LETTER CHI": "X",
    "GREEK SMALL LETTER ALPHA": "a", "GREEK SMALL LETTER IOTA": "i", "GREEK SMALL LETTER KAPPA": "k",
    "GREEK SMALL LETTER NU": "v", "GREEK SMALL LETTER OMICRON": "o", "GREEK SMALL LETTER RHO": "p",
    "GREEK SMALL LETTER UPSILON": "u", "GREEK SMALL LETTER CHI": "x",
    # Armenian
    "ARMENIAN CAPITAL LETTER OH": "O", "ARMENIAN SMALL LETTER OH": "o", "ARMENIAN CAPITAL LETTER SEH": "U",
    "ARMENIAN SMALL LETTER SEH": "u", "ARMENIAN SMALL LETTER VO": "n", "ARMENIAN SMALL LETTER HO": "h",
    "ARMENIAN SMALL LETTER CO": "g", "ARMENIAN SMALL LETTER ZA": "q",
    # Cherokee
    "CHEROKEE LETTER GO": "A", "CHEROKEE LETTER YV": "B", "CHEROKEE LETTER TLI": "C", "CHEROKEE LETTER A": "D",
    "CHEROKEE LETTER GV": "E", "CHEROKEE LETTER NAH": "G", "CHEROKEE LETTER MI": "H", "CHEROKEE LETTER GU": "J",
    "CHEROKEE LETTER TSO": "K", "CHEROKEE LETTER TLE": "L", "CHEROKEE LETTER LU": "M", "CHEROKEE LETTER TLV": "P",
    "CHEROKEE LETTER DU": "S", "CHEROKEE LETTER I": "T", "CHEROKEE LETTER DO": "V", "CHEROKEE LETTER LA": "W",
    "CHEROKEE LETTER TA": "W", "CHEROKEE LETTER NO": "Z", "CHEROKEE LETTER V": "i",
    # Lisu
    "LISU LETTER A": "A", "LISU LETTER BA": "B", "LISU LETTER CA": "C", "LISU LETTER DA": "D",
    "LISU LETTER E": "E", "LISU LETTER TSA": "F", "LISU LETTER GA": "G", "LISU LETTER XA": "H",
    "LISU LETTER I": "I", "LISU LETTER JA": "J", "LISU LETTER KA": "K", "LISU LETTER LA": "L",
    "LISU LETTER MA": "M", "LISU LETTER NA": "N", "LISU LETTER O": "O", "LISU LETTER PA": "P",
    "LISU LETTER ZHA": "R", "LISU LETTER SA": "S", "LISU LETTER TA": "T", "LISU LETTER U": "U",
    "LISU LETTER HA": "V", "LISU LETTER WA": "W", "LISU LETTER SHA": "X", "LISU LETTER YA": "Y",
    "LISU LETTER DZA": "Z",
    "CYRILLIC CAPITAL LETTER STRAIGHT U": "Y", "CYRILLIC SMALL LETTER STRAIGHT U": "y",
    "CYRILLIC CAPITAL LETTER IZHITSA": "V", "CYRILLIC SMALL LETTER IZHITSA": "v",
    "GREEK LETTER YOT": "j", "ARMENIAN CAPITAL LETTER LIWN": "L",
    # Latin among itself: small capitals, and letters that read as others
    "LATIN LETTER SMALL CAPITAL C": "c", "LATIN LETTER SMALL CAPITAL O": "o", "LATIN LETTER SMALL CAPITAL S": "s",
    "LATIN LETTER SMALL CAPITAL U": "u", "LATIN LETTER SMALL CAPITAL V": "v", "LATIN LETTER SMALL CAPITAL W": "w",
    "LATIN LETTER SMALL CAPITAL Z": "z",
    "LATIN SMALL LETTER DOTLESS I": "i", "LATIN SMALL LETTER ALPHA": "a", "LATIN SMALL LETTER SCRIPT G": "g",
    "DIGIT ONE": "l", "DIGIT ZERO": "O",
}
# l, I and 1 read alike in many fonts ("AIice"): one letter in the key. Keys are
# lower case, so capital I is i by then: l and 1 become i too.
_ONE_STROKE = {"l": "i"}


def _table() -> dict[int, str]:
    """Each lookalike, and its lower case (names compare regardless of case: a review
    found "Нина" and "нина" apart once only capitals were mapped), to the lower-case
    Latin letter; where a small letter has a look of its own (Greek ν, like v) it wins
    over its capital's (Ν, like N)."""
    table: dict[int, str] = {}
    for name, latin in _PASSES_FOR.items():
        char, target = unicodedata.lookup(name), latin.casefold()
        target = _ONE_STROKE.get(target, target)
        table[ord(char)] = target
        lower = char.casefold()
        if len(lower) == 1 and lower != char and unicodedata.lookup(name).isupper():
            table.setdefault(ord(lower), target)
    for small in [name for name in _PASSES_FOR if " SMALL " in name]:      # explicit small letters win
        table[ord(unicodedata.lookup(small))] = _ONE_STROKE.get(_PASSES_FOR[small].casefold(),
                                                                _PASSES_FOR[small].casefold())
    for latin, target in _ONE_STROKE.items():
        table[ord(latin)] = target
    return table


_TABLE = _table()


def as_latin(text: str) -> str:
    """``text`` (already lower case) with every lookalike replaced by the lower-case
    Latin letter it passes for."""
    return text.translate(_TABLE)


__all__ = ["as_latin"]
