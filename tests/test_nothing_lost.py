"""Nothing lost on a flaky network, over real sockets: a chaos proxy between the
members and the relay resets every connection after a random 0.7-2.5 s while each
member sends numbered messages at about ten a second. Once the network settles,
every member has every message of the others exactly once, in each sender's order,
and every sender's receipts say so. Version 1 lost well over half.

    SECUREX_CHAOS_MEMBERS, SECUREX_CHAOS_MESSAGES   scale it up (defaults 3 and 60)
"""

from __future__ import annotations

import os
import threading
import time

from helpers import ChaosProxy, CoreClient, running_server, wait_until
from securex.events import ChatMessage, DeliveryChanged

MEMBERS = int(os.environ.get("SECUREX_CHAOS_MEMBERS", "3"))
MESSAGES = int(os.environ.get("SECUREX_CHAOS_MESSAGES", "60"))
RATE = 10.0     # messages a second, per member


def test_a_network_that_keeps_resetting_loses_duplicates_and_reorders_nothing():
    names = [f"Member{i}" for i in range(MEMBERS)]
    with running_server(max_pending_per_address=MEMBERS + 2, max_clients=max(5, MEMBERS)) as server:
        proxy = ChaosProxy(server.port)
        members = [CoreClient(proxy.port, name) for name in names]
        try:
            for member in members:
                member.start()
            collecting = [member.collect_in_background() for member in members]
            wait_until(lambda: all(any(type(e).__name__ == "Joined" for e in list(m.seen)) for m in members),
                       "everyone to be in the room once", timeout=30)
            started = time.monotonic()

            def talk(member: CoreClient) -> None:
                for n in range(MESSAGES):
                    member.session.send_text(f"{member.name} {n}")
                    time.sleep(1 / RATE)      # pacing a person's typing, not waiting for an event

            talkers = [threading.Thread(target=talk, args=(member,)) for member in members]
            for thread in talkers:
                thread.start()
            for thread in talkers:
                thread.join(MESSAGES / RATE + 30)
            proxy.active.clear()              # the network settles
            sending_took = time.monotonic() - started

            def complete(member: CoreClient) -> bool:
                got = [e.text for e in list(member.seen) if isinstance(e, ChatMessage) and not e.own]
                return len(got) >= (MEMBERS - 1) * MESSAGES

            wait_until(lambda: all(complete(m) for m in members), "everyone to catch up", timeout=90)
            settled = time.monotonic() - started

            def receipts_done(member: CoreClient) -> bool:
                latest = {}
                for event in list(member.seen):
                    if isinstance(event, DeliveryChanged):
                        latest[event.message_id] = event
                return len(latest) == MESSAGES and all(e.state == "delivered" for e in latest.values())

            wait_until(lambda: all(receipts_done(m) for m in members), "every receipt", timeout=60)
            for stop in collecting:
                stop.set()
        finally:
            for member in members:
                member.close()
            proxy.stop()
    for member in members:
        got = [e.text for e in member.seen if isinstance(e, ChatMessage) and not e.own]
        assert len(got) == len(set(got)), f"{member.name} was shown a message twice"
        for other in names:
            if other == member.name:
                continue
            numbers = [int(text.split()[1]) for text in got if text.split()[0] == other]
            assert numbers == list(range(MESSAGES)), f"{member.name} got {other}'s messages as {numbers}"
    print(f"\nchaos: {MEMBERS} members x {MESSAGES} messages through {proxy.resets} connection resets; "
          f"sending took {sending_took:.1f} s, everyone had everything {settled:.1f} s after the start; "
          f"0 lost, 0 duplicated, 0 out of order; every receipt in")
