"""Right-to-left text drawn left to right (securex.bidi): the order and the forms
Tk is given, and the way back to what was typed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from securex.bidi import logical_indices, needs_reordering, visual_line, visual_pieces

SHALOM = "\u05e9\u05dc\u05d5\u05dd"            # שלום, typed right to left: shin first
OLAM = "\u05e2\u05d5\u05dc\u05dd"              # עולם


def reversed_text(text: str) -> str:
    return text[::-1]


# -- the order -------------------------------------------------------------------------

def test_hebrew_is_drawn_right_to_left():
    line = visual_line(f"{SHALOM} {OLAM}")
    assert line.text == f"{reversed_text(OLAM)} {reversed_text(SHALOM)}"
    assert line.right_to_left


def test_digits_in_hebrew_keep_their_order():
    assert visual_line(f"{SHALOM} 123").text == f"123 {reversed_text(SHALOM)}"
    assert visual_line(f"{SHALOM} 3.5%").text == f"3.5% {reversed_text(SHALOM)}"


def test_a_hebrew_word_in_english_is_reversed_in_place():
    line = visual_line(f"Hi {SHALOM}, see you at 10!")
    assert line.text == f"Hi {reversed_text(SHALOM)}, see you at 10!"
    assert not line.right_to_left


def test_english_in_a_hebrew_line_reads_left_to_right():
    assert visual_line(f"{SHALOM}, Bob 3.5%").text == f"Bob 3.5% ,{reversed_text(SHALOM)}"


def test_brackets_are_mirrored_in_right_to_left_text():
    assert visual_line(f"({SHALOM})").text == f"({reversed_text(SHALOM)})"
    assert visual_line(f"{SHALOM} [1]").text == f"[1] {reversed_text(SHALOM)}"


def test_mathematical_signs_are_mirrored_too():
    # "א ≪ ב" (aleph much-less-than bet) drawn from the right must still point at aleph.
    assert visual_line("\u05d0 \u226a \u05d1").text == "\u05d1 \u226b \u05d0"
    assert visual_line("\u05d0 \u2282 \u05d1").text == "\u05d1 \u2283 \u05d0"      # subset, superset


def test_combining_marks_stay_after_their_letter():
    shin_qamats, vav_holam = "\u05e9\u05b8", "\u05d5\u05b9"
    word = f"{shin_qamats}\u05dc{vav_holam}\u05dd"          # שָלוֹם, pointed
    assert visual_line(word).text == f"\u05dd{vav_holam}\u05dc{shin_qamats}"


def test_emoji_sequences_stay_whole_in_right_to_left_text():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    heart = "\u2764\ufe0f"
    line = visual_line(f"{SHALOM} {family} {heart}")
    assert family in line.text and heart in line.text


def test_trailing_spaces_stay_at_the_end_of_a_left_to_right_line():
    assert visual_line(f"ok {SHALOM}  ").text == f"ok {reversed_text(SHALOM)}  "


def test_bidi_overrides_do_not_reverse_latin_text():
    # An attacker's RIGHT-TO-LEFT OVERRIDE is not obeyed (display_safe removes it before
    # a member's text is shown; here it reaches the algorithm and is only a neutral).
    for override in ("\u202e", "\u2067", "\u200f"):
        assert visual_line(f"pay {override}Bob 100").text == f"pay {override}Bob 100"


def test_a_zero_width_joiner_cannot_split_a_number_or_move_a_letter():
    # Found in review: a joiner carried the character after it into another run.
    amount = visual_line("\u05e1\u05db\u05d5\u05dd 1,\u200d000")       # "sum 1,000" with a joiner
    assert amount.text == "1,\u200d000 \u05dd\u05d5\u05db\u05e1"
    assert visual_line(f"{SHALOM[0]}\u200d{SHALOM[1:]}").text == reversed_text(SHALOM[1:]) + SHALOM[0] + "\u200d"


def test_arabic_digits_alone_are_drawn_right_to_left_among_themselves():
    assert visual_line("\u0661 \u0662").text == "\u0662 \u0661"


def test_where_a_line_wraps_does_not_change_how_it_reads():
    # Levels come from the whole line; each screen line is only reordered (found in review).
    line = "abc " + "\u05d0\u05d1\u05d2 " * 3 + "123 \u05d3\u05d4\u05d5"
    whole_pieces = visual_pieces(line, [0, line.index("123")])
    assert whole_pieces[1].text == "\u05d5\u05d4\u05d3 123"
    covered = sorted(i for piece in whole_pieces for first, last in piece.spans for i in range(first, last))
    assert covered == list(range(len(line)))


def test_a_long_run_of_combining_marks_is_shaped_in_one_pass():
    # Found in review: each mark looked back over all the marks before it (minutes for one message).
    line = "\u0628" + "\u064e" * 49_151
    drawn = visual_line(line)
    assert drawn.text == "\ufe8f" + "\u064e" * 49_151 and len(drawn.spans) == len(line)


# -- Arabic ------------------------------------------------------------------------------

def test_arabic_letters_join_and_run_right_to_left():
    # مرحبا: meem initial, reh final, hah initial, beh medial, alef final; drawn from the left.
    line = visual_line("\u0645\u0631\u062d\u0628\u0627")
    assert line.text == "\ufe8e\ufe92\ufea3\ufeae\ufee3"


def test_lam_alef_becomes_one_ligature_copied_as_two_letters():
    salam = "\u0633\u0644\u0627\u0645"               # سلام: seen, lam-alef, meem
    line = visual_line(salam)
    assert line.text == "\ufee1\ufefc\ufeb3"         # meem isolated, lam-alef final, seen initial
    assert line.spans == ((3, 4), (1, 3), (0, 1))
    assert "".join(salam[i] for i in logical_indices(line, 1, 2)) == "\u0644\u0627"


def test_a_letter_that_never_joins_breaks_the_word():
    # Hamza joins nothing: the beh before it stays isolated, not initial.
    assert visual_line("\u0628\u0621").text == "\ufe80\ufe8f"


def test_persian_letters_and_tatweel_join():
    # پـ: peh joined to a tatweel takes its initial form.
    assert visual_line("\u067e\u0640").text == "\u0640\ufb58"


def test_arabic_digits_after_arabic_letters_keep_their_order():
    line = visual_line("\u0628\u0627\u0628 12")
    assert line.text.startswith("12 ")


# -- properties --------------------------------------------------------------------------

MIXED = st.text(alphabet=st.sampled_from(
    list("ab Z09.,%$-+()[]!?\t ") + list(SHALOM + OLAM) + list("\u0645\u0631\u062d\u0628\u0627\u0644\u0621\u0640")
    + ["\u05b8", "\u064e", "\u200d", "\ufe0f", "\U0001F600", "\u0661", "\u202e"]), max_size=40)


@given(MIXED)
def test_every_typed_character_is_drawn_exactly_once(text):
    line = visual_line(text)
    assert len(line.spans) == len(line.text)
    covered = [i for start, end in line.spans for i in range(start, end)]
    assert sorted(covered) == list(range(len(text)))
    assert logical_indices(line, 0, len(line.text)) == list(range(len(text)))


@given(st.text(alphabet=st.characters(max_codepoint=0x058F), max_size=60))
def test_text_without_right_to_left_letters_is_untouched(text):
    assert not needs_reordering(text)
    assert visual_line(text).text == text


@given(st.lists(st.sampled_from(list(SHALOM + OLAM)), min_size=1, max_size=12).map("".join),
       st.lists(st.sampled_from(list(SHALOM + OLAM)), min_size=1, max_size=12).map("".join))
def test_hebrew_words_are_exactly_reversed(first, second):
    text = f"{first} {second}"
    assert visual_line(text).text == reversed_text(text)


@given(MIXED, st.integers(0, 40), st.integers(0, 40))
def test_a_selection_maps_back_to_typed_characters_in_order(text, a, b):
    line = visual_line(text)
    start, end = sorted((min(a, len(line.text)), min(b, len(line.text))))
    indices = logical_indices(line, start, end)
    assert indices == sorted(set(indices))
    assert all(0 <= i < len(text) for i in indices)
