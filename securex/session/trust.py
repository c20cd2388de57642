"""Trust on first use of safety codes. Sans-IO.

The first safety code seen for a name is remembered; a member later showing another
code under that name is an alert, until the user compares codes out loud and says
``/trust NAME``. The code remembered stays until then: an impostor who joined once
must not make the real member look like one. The runner keeps ``codes`` on disk
(``identity.save_known_codes``) whenever ``changed`` is set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from securex.events import Severity
from securex.session.members import Peer
from securex.text import display_safe, name_key


# A member met again moves to the newest end of what is kept (identity.MAX_KNOWN), and at
# most this many names are first met per run: joining under a thousand new names cannot
# push out the code of someone we meet (a review finding).
MAX_NEW_NAMES_PER_RUN = 64


@dataclass(frozen=True)
class TrustNotice:
    text: str
    severity: Severity
    # Anyone can send many of these: shown at most every so often per kind (RoomCore).
    repeat_kind: str | None = None


class KnownCodes:
    """Name (as it compares, ``name_key``) -> the safety code trusted for it."""

    def __init__(self, codes: dict[str, str] | None = None) -> None:
        self.codes = codes if codes is not None else {}
        self.changed = False
        self._new_names = 0
        self._met_joining: set[str] = set()    # names first met in the join under way

    def trusted_code(self, name: str) -> str | None:
        return self.codes.get(name_key(name))

    def unfamiliar(self, name: str, code: str) -> bool:
        """Another code than the one trusted for this name (see ``members.labels``)."""
        return self.codes.get(name_key(name), code) != code

    def check(self, peer: Peer, others: Iterable[Peer], my_name: str, my_code: str,
              my_key: bytes, *, joining: bool = False) -> TrustNotice | None:
        """A member just verified: what to tell the user about its code, if anything.
        ``joining``: we are joining, and meet everyone present at once."""
        if not joining:
            self._met_joining.clear()
        key, code = name_key(peer.name), peer.verified.safety_code
        if key == name_key(my_name) and peer.verified.identity.public_key != my_key:
            return TrustNotice(f"Another member is using your name: {peer.member.label}, safety code {code} "
                               f"(yours is {my_code}). Everyone sees the two of you with the start of your codes "
                               "after the name; if you did not expect a namesake, compare codes out loud.",
                               Severity.WARNING, f"namesake {peer.verified.identity.public_key.hex()}")
        previous = self.codes.get(key)
        namesakes = [other for other in others if other is not peer and name_key(other.name) == key]
        if previous is None:
            if namesakes:        # met together for the first time: neither is the one we know
                return self._neither_known(peer, namesakes)
            if self._new_names < MAX_NEW_NAMES_PER_RUN:
                self._new_names += 1
                if joining:
                    self._met_joining.add(key)
                self._remember(key, code)
            return None
        if key in self._met_joining and previous != code:
            # The code "known" was only the first of two met in this join to finish its
            # handshake: a tester found newcomers trusting whichever that was, impostor or not.
            self.codes.pop(key, None)
            self._met_joining.discard(key)
            self.changed = True
            return self._neither_known(peer, namesakes)
        if previous == code:
            if next(reversed(self.codes)) != key:
                self._remember(key, code)          # met again: among the newest, not the first forgotten
            return None
        trusted = next((other for other in others if other is not peer
                        and name_key(other.name) == key and other.verified.safety_code == previous), None)
        if trusted is not None:
            return TrustNotice(f"A second member is using the name {peer.name}: {peer.member.label}, safety code "
                               f"{code}. {trusted.member.label}, with the code you know for that name "
                               f"({previous}), is here too. One of them may be pretending: compare safety codes "
                               "out loud before you believe either.", Severity.ALERT)
        return TrustNotice(f"{peer.member.label}'s safety code has changed: it was {previous}, it is now {code}. "
                           f"If {peer.name} did not reinstall Secure X or switch computers, this may be someone "
                           "else using the name: compare safety codes out loud. You will be warned each time "
                           f"until you type /trust {peer.name} (once you have compared them).", Severity.ALERT)

    @staticmethod
    def _neither_known(peer: Peer, namesakes: list[Peer]) -> TrustNotice:
        others = ", ".join(f"{other.member.label} ({other.verified.safety_code})" for other in namesakes)
        return TrustNotice(f"Members whose names read alike are here, and you have not met {peer.name} before: "
                           f"{peer.member.label} ({peer.verified.safety_code}) and {others}. Compare safety codes "
                           f"out loud to know which is which; once only the real one is here, /trust {peer.name}.",
                           Severity.ALERT)

    def trust(self, name: str, present: Iterable[Peer], my_name: str) -> TrustNotice:
        """The user compared safety codes with the member called ``name``, who is here:
        remember that member's code for the name from now on."""
        key = name_key(name.strip())
        if key == name_key(my_name):     # a namesake of ours is told apart by its code, never trusted as us
            return TrustNotice(f"{display_safe(name, keep_newlines=False)} is your own name: /trust is for the "
                               "code of another member.", Severity.WARNING)
        matching = [peer for peer in present if name_key(peer.name) == key]
        if not matching:
            return TrustNotice(f"Nobody called {display_safe(name, keep_newlines=False)} is in the room: /trust "
                               "needs the name of a member who is here now.", Severity.WARNING)
        if len(matching) > 1:
            return TrustNotice(f"{len(matching)} members called {matching[0].name} are here: /trust cannot tell "
                               "which one you checked. Ask the one who is not who they say to leave first.",
                               Severity.WARNING)
        peer = matching[0]
        code = peer.verified.safety_code
        if self.codes.get(key) == code:
            return TrustNotice(f"{code} is already the safety code you trust for {peer.member.label}.", Severity.INFO)
        self._remember(key, code)
        return TrustNotice(f"From now on {code} is the safety code you trust for {peer.member.label}.", Severity.INFO)

    def _remember(self, key: str, code: str) -> None:
        self.codes.pop(key, None)      # re-inserted last: the most recent stay when trimmed
        self.codes[key] = code
        self.changed = True


__all__ = ["KnownCodes", "TrustNotice"]
