"""How much each phase measures: the counts of a default run and of a quick run.

A default run takes about two to three minutes on a 2-core machine; a quick run
(``--quick``) goes through every phase with tiny counts, to show the benchmark
still works (the smoke test), not to measure anything.

The flood phase is sized in deliveries per run rather than texts per member, so
every room size floods about as long: a room of ``k`` members makes
``k * (k - 1)`` deliveries per text round. Sealing those frames beforehand costs
the member processes some 25 times the CPU that relaying them costs the relay,
which is what bounds the counts; the headline (a full room, 100 B texts, the
figure of the final ratio) gets the most deliveries and several runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

ROOM = 5                   # members in a full room (the relay's default capacity)
FLOOD_ROOMS = (2, 3, 4, 5)
TEXT_SIZES = (100, 4096)


@dataclass(frozen=True)
class Settings:
    quick: bool
    headline_deliveries: int                # per run of the headline: a full room, 100 B texts
    headline_repeats: int                   # runs per relay of the headline
    flood_deliveries: dict[int, int]       # per run of every other room size, by text size
    fanout_repeats: int                     # runs per relay of those
    sample_every: int                       # decrypt every n-th flooded record
    e2e_texts: int                          # texts per member
    e2e_repeats: int
    e2e_window: int                         # texts a member may be ahead of what it received
    latency_runs: tuple[tuple[float, int], ...]   # (seconds between two texts, texts), in turn
    joins: int
    pake_runs: int
    scrypt_runs: int
    idle_seconds: float
    crypto_seconds: float
    crypto_min_batches: int

    def is_headline(self, members: int, text_size: int) -> bool:
        return members == ROOM and text_size == TEXT_SIZES[0]

    def flood_texts(self, members: int, text_size: int) -> int:
        """Texts each member sends in one run, for about the deliveries asked."""
        deliveries = (self.headline_deliveries if self.is_headline(members, text_size)
                      else self.flood_deliveries[text_size])
        return max(2, deliveries // (members * (members - 1)))

    def flood_repeats(self, members: int, text_size: int) -> int:
        return self.headline_repeats if self.is_headline(members, text_size) else self.fanout_repeats


DEFAULT = Settings(quick=False, headline_deliveries=120_000, headline_repeats=3,
                   flood_deliveries={100: 50_000, 4096: 16_000}, fanout_repeats=1, sample_every=50,
                   e2e_texts=800, e2e_repeats=3, e2e_window=100, latency_runs=((0.01, 300), (0.001, 2000)),
                   joins=8, pake_runs=20, scrypt_runs=5, idle_seconds=5.0, crypto_seconds=0.3, crypto_min_batches=3)

QUICK = Settings(quick=True, headline_deliveries=240, headline_repeats=1,
                 flood_deliveries={100: 240, 4096: 120}, fanout_repeats=1, sample_every=1,
                 e2e_texts=10, e2e_repeats=1, e2e_window=10, latency_runs=((0.01, 10), (0.001, 40)),
                 joins=2, pake_runs=2, scrypt_runs=1, idle_seconds=1.0, crypto_seconds=0.01, crypto_min_batches=1)


def settings_for(quick: bool, idle_seconds: float | None = None) -> Settings:
    chosen = QUICK if quick else DEFAULT
    return chosen if idle_seconds is None else replace(chosen, idle_seconds=idle_seconds)
