"""Joining: what it costs to enter a room where four members are present.

* scrypt alone: ``crypto_utils.passphrase_to_w`` without its cache (the scrypt of
  the passphrase every client computes once per run of the program), in this
  process;
* one PAKE and identity proof alone: ``PairHandshake`` for both sides, in this
  process, fed each other's bodies (no sockets): SPAKE2 shares, confirmations,
  sealed identities, Ed25519 signatures and their checks. The newcomer's side is
  timed apart from the member's, since a newcomer runs one per member present;
* the whole join: four members (real ``ChatSession`` clients, a process each)
  are in the room; a newcomer, in a process of its own, starts its session as a
  program that has just started (scrypt not cached; identity key on disk) and is
  timed from ``ChatSession.start()`` to its ``Joined`` event, which must say it
  verified all four. Then it leaves and the next newcomer comes, several times.
"""

from __future__ import annotations

import statistics
import time

import bench_setup  # noqa: F401  (the project on sys.path)
import crypto_utils
from bench_members import RUN_TIMEOUT, ChatMember, MemberError, chat_room
from bench_relays import SECURE, running_relay
from bench_report import Report, spread
from bench_settings import ROOM, Settings
from helpers import PASSPHRASE
from securex.session import peer_wire
from securex.session.handshake import LocalIdentity, PairHandshake

TARGET_MS = 300.0
PRESENT = ROOM - 1


def time_scrypt() -> float:
    """Seconds for one uncached ``passphrase_to_w`` (the cache is left as it was)."""
    started = time.perf_counter()
    crypto_utils.passphrase_to_w.__wrapped__(PASSPHRASE)
    return time.perf_counter() - started


def time_pake() -> tuple[float, float]:
    """Seconds spent by the newcomer's side and by the member's side of one complete
    run (both verified), their bodies handed over directly."""
    w = crypto_utils.passphrase_to_w(PASSPHRASE)
    newcomer = LocalIdentity.from_seed("newcomer", crypto_utils.new_identity_seed())
    member = LocalIdentity.from_seed("member", crypto_utils.new_identity_seed())

    def state() -> tuple[bytes, int]:
        return bytes(peer_wire.RUN_ID_BYTES), 0

    a_started = time.perf_counter()
    run_a, pake_a = PairHandshake.as_newcomer(w, newcomer, state, crypto_utils.new_nonce())
    a_seconds = time.perf_counter() - a_started
    b_started = time.perf_counter()
    run_b, pake_b = PairHandshake.as_member(w, member, state, peer_wire.split_body(pake_a)[1])
    b_seconds = time.perf_counter() - b_started
    a_started = time.perf_counter()
    confirm = run_a.receive(*peer_wire.split_body(pake_b))
    a_seconds += time.perf_counter() - a_started
    b_started = time.perf_counter()
    answer = run_b.receive(*peer_wire.split_body(confirm.send[0]))
    b_seconds += time.perf_counter() - b_started
    a_started = time.perf_counter()
    done = run_a.receive(*peer_wire.split_body(answer.send[0]))
    a_seconds += time.perf_counter() - a_started
    if done.verified is None or answer.verified is None:
        raise RuntimeError(f"the PAKE run did not verify: {done.failure or answer.failure}")
    return a_seconds, b_seconds


def run_phase(report: Report, settings: Settings) -> None:
    report.section("join", f"joining a room with {PRESENT} members present")
    scrypt_ms = [1e3 * time_scrypt() for _ in range(settings.scrypt_runs)]
    report.figure(f"join scrypt alone (N=2^{crypto_utils.SCRYPT_N.bit_length() - 1}, "
                  f"r={crypto_utils.SCRYPT_R}, p={crypto_utils.SCRYPT_P})", spread(scrypt_ms, "ms", 1))
    pakes = [time_pake() for _ in range(settings.pake_runs)]
    newcomer_ms = [1e3 * a for a, _ in pakes]
    report.figure("join one PAKE + identity proof, newcomer's side", spread(newcomer_ms, "ms", 2))
    report.figure("join one PAKE + identity proof, member's side", spread([1e3 * b for _, b in pakes], "ms", 2))
    report.figure(f"join estimate of the newcomer's CPU with {PRESENT} present (scrypt + {PRESENT} x newcomer side)",
                  f"{statistics.median(scrypt_ms) + PRESENT * statistics.median(newcomer_ms):.1f} ms")
    label = f"join with {PRESENT} members present (ChatSession.start() to Joined, own process, scrypt not cached)"
    joins: list[float] = []
    try:
        with running_relay(SECURE) as relay, chat_room(relay.port, PRESENT, prefix="present") as (_, go):
            for index in range(settings.joins):
                newcomer = ChatMember(relay.port, f"newcomer{index}", go)
                try:
                    joined = newcomer.call("join", RUN_TIMEOUT, cold=True)
                finally:
                    newcomer.stop()
                if (joined["verified"], joined["present"]) != (PRESENT, PRESENT):
                    raise RuntimeError(f"the newcomer verified {joined['verified']} of {joined['present']} present")
                joins.append(1e3 * joined["seconds"])
    except (MemberError, RuntimeError) as error:
        report.failure("join", error)
    target = f"join with {PRESENT} members present under {TARGET_MS:g} ms, every time"
    if not joins:
        report.target(target, None, "not measured")
        return
    report.figure(label, spread(joins, "ms", of="joins") + f", max {max(joins):.0f} ms")
    report.target(target, max(joins) < TARGET_MS,
                  f"median {statistics.median(joins):.0f} ms, max {max(joins):.0f} ms over {len(joins)} joins")
