"""Right-to-left layout against hostile messages: how long one message holds the Tk
thread (``bidi.visual_line`` alone, and the desktop transcript's insert), for the
worst inputs a review found, each the 98,304-byte maximum.

    python bench/bench_bidi.py        (needs a display: Xvfb or a desktop session)
"""

from __future__ import annotations

import time
import tkinter as tk
from datetime import datetime

import bench_setup  # noqa: F401  (the project on sys.path)
from securex.bidi import visual_line
from securex.desktop.theme import LIGHT, apply_theme
from securex.desktop.transcript import Transcript

CASES = {
    "one letter, 49,151 vowel marks": "\u0628" + "\u064e" * 49_151,
    "32,767 one-letter Hebrew lines": "\u05d0\n" * 32_767,
    "one Hebrew line of 24,576 words": ("\u05d0 " * 24_576).strip(),
    "Hebrew and digits alternating": "\u05d0" + "1\u05d0" * 24_575,
    "one word of 49,152 Hebrew letters": "\u05d0" * 49_152,
}


def main() -> None:
    root = tk.Tk()
    root.geometry("900x600")
    view = Transcript(root, apply_theme(root, LIGHT))
    view.pack(fill="both", expand=True)
    root.update()
    print("Right-to-left layout, one hostile message of up to 98,304 bytes each:")
    for label, text in CASES.items():
        assert len(text.encode()) <= 98_304, label
        started = time.perf_counter()
        if "\n" not in text:
            visual_line(text)
        reorder = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(3):      # the third into a view that already holds two
            with view.batch():
                view.add_message("Zoe", text, own=False, at=datetime.now(), colour="#a33")
            root.update()
        insert = (time.perf_counter() - started) / 3
        print(f"  {label}: reorder {1e3 * reorder:.0f} ms, transcript insert {1e3 * insert:.0f} ms per message")
    started = time.perf_counter()
    root.geometry("600x600")
    root.update()
    print(f"  resize with all of them in the view: {1e3 * (time.perf_counter() - started):.0f} ms in all "
          "(laid out again in slices of 20,000 characters)")
    root.destroy()


if __name__ == "__main__":
    main()
