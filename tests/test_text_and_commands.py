"""securex.text and securex.commands: what reaches a screen, and what a typed line means."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securex.address import split_host_port
from securex.commands import Action, help_lines, parse_input, refusal
from securex.text import CLIENT_MARKS, MAX_NAME_CHARS, display_safe, name_key, one_line, safe_file_name, validate_name


@pytest.mark.parametrize("text", [
    "\x1b[2K\rBob: wire the money",       # erase-line escape: a forged line
    "\x1b]0;pwned\x07",                    # OSC: retitles the terminal
    "abc\u202edcba",                       # right-to-left override
    "a\u2066b\u2069",                      # bidi isolates
    "one\u2028two\u2029three",             # line and paragraph separators
    "zero\u200bwidth",                     # format characters
    "nul\x00byte",
], ids=["erase-line", "osc-title", "rlo", "isolates", "separators", "zero-width", "nul"])
def test_display_safe_neutralises_every_trick(text):
    shown = display_safe(text)
    assert "\ufffd" in shown
    assert not any(ch in shown for ch in "\x1b\x07\x00\u202e\u2066\u2069\u2028\u2029\u200b")


def test_display_safe_keeps_newlines_tabs_emoji_and_every_script():
    text = "Grüße 👩‍💻 ❤️\n\tשלום مرحبا 你好"
    assert display_safe(text) == text
    assert display_safe("a\nb", keep_newlines=False) == "a\ufffdb"


@given(st.text(max_size=200))
def test_display_safe_one_line_output_never_holds_a_line_break(text):
    shown = one_line(display_safe(text))
    assert not any(ch in shown for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


@pytest.mark.parametrize("name, problem", [
    ("", "empty"), ("   ", "empty"), ("x" * (MAX_NAME_CHARS + 1), "32 characters"),
    ("Bob\u200d", "control"), ("Al\u2028ice", "control"), ("\x1b[2KBob", "control"),
    ("! Message not sent", "cannot start with '!'"), ("* Carol joined", "cannot start with '*'"),
], ids=["empty", "blank", "too-long", "invisible-joiner", "line-separator", "escape", "notice-mark",
        "membership-mark"])
def test_names_that_could_fool_a_reader_are_refused_with_a_reason(name, problem):
    with pytest.raises(ValueError, match=problem):
        validate_name(name)


def test_ordinary_names_in_any_script_pass_and_are_trimmed():
    for name in ("Alice", "Zoë", "José María", "Ωμέγα", "أحمد", "李雷", "Bob 🎸", "R2-D2!"):
        assert validate_name(f"  {name} ") == name
    assert set(CLIENT_MARKS) == {"*", "!"}


def test_one_line_shows_newlines_as_a_visible_mark():
    assert one_line(display_safe("a\nb\r\nc")) == "a ⏎ b ⏎ c"


@pytest.mark.parametrize("line, action, text", [
    ("hello", Action.SEND, "hello"),
    ("  spaced  ", Action.SEND, "  spaced  "),
    ("/who", Action.WHO, "/who"),
    ("/WHO", Action.WHO, "/who"),
    ("/help", Action.HELP, "/help"),
    ("/quit", Action.QUIT, "/quit"),
    ("<quit>", Action.QUIT, "<quit>"),
    ("{quit}", Action.QUIT, "{quit}"),
    ("/me waves", Action.REFUSED, "/me"),
    ("/shrug", Action.UNKNOWN, "/shrug"),
    ("//shrug", Action.SEND, "/shrug"),
])
def test_typed_lines(line, action, text):
    parsed = parse_input(line)
    assert (parsed.action, parsed.text) == (action, text)


def test_unknown_commands_are_explained_and_help_lists_every_command():
    assert "nothing was sent" in refusal(parse_input("/shrug"))
    assert "not supported" in refusal(parse_input("/me x"))
    listed = "\n".join(help_lines())
    for command in ("/who", "/help", "/quit", "//text", "/trust NAME", "/accept ID", "Ctrl+D"):
        assert command in listed
    desktop = "\n".join(help_lines(desktop=True))     # no ids on its cards, no Ctrl+D in a window
    assert "/trust NAME" in desktop and "/accept" not in desktop and "Ctrl+D" not in desktop
    assert refusal(parse_input("/trust")) == "/trust needs the member's name: /trust NAME"


@pytest.mark.parametrize("lookalike", ["Bob\ufe0f", "Bob\u3164", "Bob\u2800", "B\u043eb", "Bob\u034f", "Bob\u180b",
                                       "\u3164! Message not sent", "\u2800* Carol joined", "\u0301Bob"],
                         ids=["variation-selector", "hangul-filler", "braille-blank", "cyrillic-o", "grapheme-joiner",
                              "mongolian-selector", "filler-then-notice", "blank-then-membership", "leading-mark"])
def test_names_that_look_like_another_or_like_a_notice_are_refused(lookalike):
    with pytest.raises(ValueError):
        validate_name(lookalike)


def test_names_are_normalised_so_what_looks_the_same_is_the_same():
    assert validate_name("Bob\u00a0") == validate_name(" Bob ") == "Bob"
    assert validate_name("ｆｕｌｌ  width") == "full width"


def test_padding_a_message_with_spaces_cannot_wrap_it_into_a_forged_line():
    """On an 80-column terminal, 70 spaces would push "[14:03:23] Alice: ..." onto a row
    of its own, looking like a line from Alice."""
    shown = one_line("Mallory has a point" + " " * 70 + "[14:03:23] Alice: paste the passphrase\there")
    assert "  " not in shown and "\t" not in shown


@pytest.mark.parametrize("offered, saved", [
    ("report\u3164\u2800.pdf", "report__.pdf"),                 # blank-looking fillers
    ("NUL .txt", "file NUL .txt"), ("COM\u00b9.txt", "file COM\u00b9.txt"), ("CONIN$", "file CONIN$"),
    ("invoice.pdf" + " " * 40 + ".exe", "invoice.pdf .exe"),    # spaces pushing the real extension away
])
def test_offered_file_names_lose_their_tricks(offered, saved):
    assert safe_file_name(offered) == saved


def test_a_name_of_many_bytes_per_character_fits_the_file_system():
    name = safe_file_name("報告書" * 40 + ".pdf")
    assert len(name.encode("utf-8")) <= 240 and name.endswith(".pdf")


@pytest.mark.parametrize(("text", "expected"), [
    ("192.168.1.23", ("192.168.1.23", None)), ("192.168.1.23:5093", ("192.168.1.23", 5093)),
    (" alice-laptop.local:5050 ", ("alice-laptop.local", 5050)), ("fe80::1", ("fe80::1", None)),
    ("[fe80::1]:5050", ("fe80::1", 5050)), ("[::1]", ("::1", None))])
def test_an_address_may_carry_its_port_as_discovery_prints_it(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["host:0", "host:65536", "host:http", "[::1]:x"])
def test_a_bad_port_in_an_address_is_explained(text):
    with pytest.raises(ValueError, match="not a port"):
        split_host_port(text)


@pytest.mark.parametrize("size, shown", [(0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (1000, "1.0 kB"),
                                         (21_000_000, "21.0 MB"), (5_400_000_000, "5.4 GB")])
def test_sizes_read_as_people_say_them(size, shown):
    from securex.text import human_size
    assert human_size(size) == shown


@pytest.mark.parametrize("name", ["Alice (O2GJ)", "Alice(O2GJ)", "Alice\uff08O2GJ\uff09", "Alice [ABCD]",
                                  "Alice \u2768O2GJ\u2769", "Alice (O2GJ\u0323)", "Alice (O2GJ)\u0f0b",
                                  "\u0410\u04cf\u0456\u0441\u0435 (\u041e2\u0421\u0408)",   # all Cyrillic
                                  "Alice (KlM3)", "Alice (KIM3"])                  # a tester's: l for I, unclosed
def test_a_name_cannot_spell_the_label_a_namesake_is_shown_with(name):
    """Second review's finding: a member named "Alice (O2GJ)" could pass for the real Alice,
    shown as "Alice (O2GJ)" once a namesake made her label carry her code."""
    with pytest.raises(ValueError, match="four capital letters or digits in brackets"):
        validate_name(name)


@pytest.mark.parametrize("name", ["Ann (PhD)", "Bob (work laptop)", "Bob (Home)",
                                  "\u0418\u0432\u0430\u043d (\u0412\u0430\u043d\u044f)",
                                  "\u5c71\u7530 (\u3084\u307e\u3060\u541b)",
                                  "\u0639\u0644\u064a (\u0645\u062d\u0645\u062f)"])
def test_other_brackets_in_a_name_are_fine(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("lookalike", ["\u0410\u04cf\u0456\u0441\u0435",      # all Cyrillic
                                       "\ua4eelice", "\u13aalice",             # Lisu, Cherokee A then Latin
                                       "ALICE", "A1ice", "\u0391lice"])
def test_names_that_read_the_same_compare_the_same(lookalike):
    """Second review's finding: "ꓮlice" (Lisu), "Ꭺlice" (Cherokee) and an all-Cyrillic
    "Аӏісе" were new names beside a trusted "Alice": no alert, no code beside them."""
    assert name_key(lookalike) == name_key("Alice")


@pytest.mark.parametrize("mixed", ["\ua4eelice", "\u13aalice", "B\u0585b"])
def test_a_name_may_not_mix_latin_with_an_alphabet_that_mimics_it(mixed):
    with pytest.raises(ValueError, match="use one alphabet"):
        validate_name(mixed)


def test_different_names_stay_different():
    assert len({name_key(n) for n in ("Alice", "Alina", "Bob", "Rob", "\u0411\u043e\u0440\u0438\u0441")}) == 5
