"""One SPAKE2 run plus identity proof between two members. Sans-IO.

The newcomer plays A with every member present; each member plays B. Three
flights, routed by the relay::

    A -> B   PAKE_A      nonce_a, pA                       (fresh x, nonce_a)
    B -> A   PAKE_B      nonce_b, pB, cB                   (fresh y, nonce_b)
    A -> B   CONFIRM_A   cA, seal(A->B, 0, identity_A)     only if cB was right
    B -> A   IDENTITY_B  seal(B->A, 0, identity_B)         only if cA was right and A's proof holds

A checks cB before saying anything that depends on the passphrase, and B
checks cA before revealing its identity, each in constant time. A wrong
confirmation is one failed guess: A tells B with REFUSE(mismatch) so B counts
it at once, and B counts a run that stops after PAKE_B as one too, since A
could have learnt the answer from cB. Identities travel only sealed under the
new keys, signed over the transcript, so nothing on the wire names a member.

States, and what each accepts (anything else fails the run)::

    A: SENT_SHARE   --PAKE_B(cB ok)-->      SENT_IDENTITY --IDENTITY_B(proof ok)--> VERIFIED
                    --PAKE_B(cB wrong)-->   FAILED mismatch
                    --REFUSE-->             FAILED refused / mismatch
    B: SENT_SHARE   --CONFIRM_A(cA ok, proof ok)--> VERIFIED (FAILED ourselves, if it is our key)
                    --CONFIRM_A(cA wrong)-->        FAILED mismatch
                    --REFUSE(mismatch)-->           FAILED mismatch
"""

from __future__ import annotations

import enum
import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import crypto_utils
from crypto_utils import ROLE_A, ROLE_B, RandBytes
from securex.errors import DecryptionError, ProtocolError
from securex.session import peer_wire
from securex.session.channel import PairChannel
from securex.session.peer_wire import BodyKind, Identity, RefuseReason


class Failure(enum.Enum):
    MISMATCH = "the passphrases differ"
    ABANDONED = "the other side stopped answering"
    REFUSED = "the room is refusing new members for a while"
    INVALID = "the other side sent something invalid"
    REFLECTED = "the other side holds our own identity key"


class State(enum.Enum):
    SENT_SHARE = "sent my share"
    SENT_IDENTITY = "confirmed; sent my identity"
    VERIFIED = "verified"
    FAILED = "failed"


@dataclass(frozen=True)
class LocalIdentity:
    """This member: a display name and its Ed25519 identity key."""
    name: str
    seed: bytes = field(repr=False)
    public_key: bytes

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> LocalIdentity:
        return cls(name, seed, crypto_utils.identity_public_key(seed))

    @functools.cached_property      # asked for on every message sent: worked out once
    def safety_code(self) -> str:
        return crypto_utils.safety_code(self.public_key)

    @functools.cached_property
    def tag(self) -> bytes:
        return crypto_utils.member_tag(self.public_key)


@dataclass(frozen=True)
class VerifiedPeer:
    """A member who proved the passphrase and its identity key to us."""
    identity: Identity
    channel: PairChannel
    role: bytes                 # our role in the run: A if we joined after it

    @functools.cached_property
    def safety_code(self) -> str:
        return crypto_utils.safety_code(self.identity.public_key)

    @functools.cached_property
    def tag(self) -> bytes:
        return crypto_utils.member_tag(self.identity.public_key)


@dataclass
class Step:
    """What one input produced: bodies to route to the peer, and the result once known."""
    send: list[bytes] = field(default_factory=list)
    verified: VerifiedPeer | None = None
    failure: Failure | None = None
    retry_after_ms: int = 0


# Our run id and the number of our next message, read when we seal our identity.
MessageState = Callable[[], tuple[bytes, int]]


class PairHandshake:
    """One run with one peer. Make it with ``as_newcomer`` or ``as_member``."""

    def __init__(self, role: bytes, w: int, me: LocalIdentity, message_state: MessageState,
                 randbytes: RandBytes, nonce: bytes | None = None) -> None:
        self.role = role
        self._w = w
        self._me = me
        self._message_state = message_state
        self._randbytes = randbytes
        self._scalar = crypto_utils.random_scalar(randbytes)
        self.nonce = nonce or crypto_utils.new_nonce(randbytes)
        self.nonce_a = self.nonce if role == ROLE_A else b""
        self.nonce_b = self.nonce if role == ROLE_B else b""
        self.share = crypto_utils.spake2_share(role, w, self._scalar)
        self.state = State.SENT_SHARE
        self.failure: Failure | None = None
        self._peer_proved_passphrase = False
        self._result: crypto_utils.Spake2Result | None = None
        self._keys: crypto_utils.ChannelKeys | None = None
        self._peer_share = b""

    # -- starting ---------------------------------------------------------------

    @classmethod
    def as_newcomer(cls, w: int, me: LocalIdentity, message_state: MessageState, attempt: bytes,
                    randbytes: RandBytes = secrets.token_bytes) -> tuple[PairHandshake, bytes]:
        """Open a run with a member already in the room: (run, PAKE_A body). ``attempt``
        is this attempt's nonce, the same in the runs with each member (the
        scalar is fresh for every run)."""
        run = cls(ROLE_A, w, me, message_state, randbytes, nonce=attempt)
        return run, peer_wire.encode_pake_a(run.nonce, run.share)

    @classmethod
    def as_member(cls, w: int, me: LocalIdentity, message_state: MessageState, pake_a: bytes,
                  randbytes: RandBytes = secrets.token_bytes) -> tuple[PairHandshake, bytes]:
        """Answer a newcomer's PAKE_A payload: (run, PAKE_B body). Raises ProtocolError
        or DecryptionError for a malformed message or an invalid point; no answer
        is sent then, so nothing is learnt and no guess is spent."""
        nonce_a, share_a = peer_wire.parse_pake_a(pake_a)
        run = cls(ROLE_B, w, me, message_state, randbytes)
        run.nonce_a, run._peer_share = nonce_a, share_a
        run._finish_spake2()
        assert run._result is not None
        return run, peer_wire.encode_pake_b(run.nonce, run.share, run._result.my_confirmation)

    @property
    def attempt(self) -> bytes:
        """The newcomer's nonce: one attempt to join, whichever member it ran with."""
        return self.nonce_a

    # -- receiving ----------------------------------------------------------------

    def receive(self, kind: BodyKind, payload: bytes) -> Step:
        """Feed one body from the peer (kind byte already split off)."""
        if self.state in (State.VERIFIED, State.FAILED):
            return Step()   # late or duplicated: the run is over, nothing changes
        try:
            if kind == BodyKind.REFUSE:
                return self._on_refuse(payload)
            if self.role == ROLE_A and self.state == State.SENT_SHARE and kind == BodyKind.PAKE_B:
                return self._on_pake_b(payload)
            if self.role == ROLE_A and self.state == State.SENT_IDENTITY and kind == BodyKind.IDENTITY_B:
                return self._on_identity(payload, BodyKind.IDENTITY_B, Step())
            if self.role == ROLE_B and self.state == State.SENT_SHARE and kind == BodyKind.CONFIRM_A:
                return self._on_confirm_a(payload)
        except (ProtocolError, DecryptionError):
            return self._fail(Failure.INVALID)
        return self._fail(Failure.INVALID)   # a message this state does not accept

    def abandon(self) -> Step:
        """The peer went quiet or went away before the run ended."""
        if self.state in (State.VERIFIED, State.FAILED):
            return Step()
        return self._fail(Failure.ABANDONED)

    @property
    def confirmed(self) -> bool:
        """True once the other side's confirmation matched: it knows the passphrase,
        so however the run ends now, it was no guess."""
        return self._peer_proved_passphrase

    # -- the steps ----------------------------------------------------------------------

    def _on_refuse(self, payload: bytes) -> Step:
        reason, retry_after_ms = peer_wire.parse_refuse(payload)
        if reason == RefuseReason.BACKOFF and self.role == ROLE_A and self.state == State.SENT_SHARE:
            step = self._fail(Failure.REFUSED)
            step.retry_after_ms = retry_after_ms
            return step
        if reason == RefuseReason.MISMATCH and self.role == ROLE_B:
            # The newcomer found our cB wrong. A member never sends this to a newcomer (it
            # only fails silently on a bad cA), so a newcomer learns a mismatch from cB
            # alone: a forged refusal cannot make it believe its passphrase is wrong.
            return self._fail(Failure.MISMATCH)
        return self._fail(Failure.INVALID)

    def _on_pake_b(self, payload: bytes) -> Step:
        self.nonce_b, self._peer_share, confirm_b = peer_wire.parse_pake_b(payload)
        self._finish_spake2()
        assert self._result is not None and self._keys is not None
        if not self._result.peer_confirms(confirm_b):
            step = self._fail(Failure.MISMATCH)
            step.send.append(peer_wire.encode_refuse(RefuseReason.MISMATCH))
            return step
        self._peer_proved_passphrase = True
        self.state = State.SENT_IDENTITY
        sealed = self._seal_identity(BodyKind.CONFIRM_A, self._keys.a_to_b)
        return Step(send=[peer_wire.encode_confirm_a(self._result.my_confirmation, sealed)])

    def _on_confirm_a(self, payload: bytes) -> Step:
        confirm_a, sealed = peer_wire.parse_confirm_a(payload)
        assert self._result is not None and self._keys is not None
        if not self._result.peer_confirms(confirm_a):
            return self._fail(Failure.MISMATCH)
        self._peer_proved_passphrase = True
        reply = Step(send=[peer_wire.encode_identity_b(self._seal_identity(BodyKind.IDENTITY_B,
                                                                           self._keys.b_to_a))])
        return self._on_identity(sealed, BodyKind.CONFIRM_A, reply)

    def _on_identity(self, sealed: bytes, kind: BodyKind, step: Step) -> Step:
        assert self._result is not None and self._keys is not None
        send_key, receive_key = self._keys.for_role(self.role)
        aad = peer_wire.channel_aad(kind, self.nonce_a, self.nonce_b, 0)
        identity = peer_wire.parse_identity(crypto_utils.open_sealed(receive_key, 0, aad, sealed))
        peer_role = ROLE_B if self.role == ROLE_A else ROLE_A
        proof = crypto_utils.identity_proof_message(peer_role, self._result.transcript_digest)
        if not crypto_utils.verify_signature(identity.public_key, proof, identity.signature):
            return self._fail(Failure.INVALID)
        if identity.public_key == self._me.public_key:
            # Only a holder of our own key can sign that: another Secure X of ours (or a
            # copy of the key). B still answers, sealed, so the newcomer learns it for
            # certain and gives up instead of joining as a second us.
            failed = self._fail(Failure.REFLECTED)
            failed.send = step.send
            return failed
        self.state = State.VERIFIED
        channel = PairChannel(send_key, receive_key, self.nonce_a, self.nonce_b)
        step.verified = VerifiedPeer(identity, channel, self.role)
        self._forget_secrets()
        return step

    # -- helpers ----------------------------------------------------------------------------

    def _finish_spake2(self) -> None:
        share_a, share_b = (self.share, self._peer_share) if self.role == ROLE_A else (self._peer_share, self.share)
        self._result = crypto_utils.spake2_finish(
            self.role, self._w, self._scalar, crypto_utils.pake_identity(ROLE_A, self.nonce_a),
            crypto_utils.pake_identity(ROLE_B, self.nonce_b), share_a, share_b)
        self._keys = crypto_utils.channel_keys(self._result.ke, self.nonce_a, self.nonce_b)

    def _seal_identity(self, kind: BodyKind, key: bytes) -> bytes:
        assert self._result is not None
        run_id, next_msg_no = self._message_state()
        proof = crypto_utils.identity_proof_message(self.role, self._result.transcript_digest)
        identity = Identity(self._me.name, self._me.public_key, crypto_utils.sign(self._me.seed, proof),
                            run_id, next_msg_no)
        aad = peer_wire.channel_aad(kind, self.nonce_a, self.nonce_b, 0)
        return crypto_utils.seal(key, 0, aad, peer_wire.encode_identity(identity))

    def _fail(self, failure: Failure) -> Step:
        self.state, self.failure = State.FAILED, failure
        self._forget_secrets()
        return Step(failure=failure)

    def _forget_secrets(self) -> None:
        # Python cannot wipe memory, but it can drop every reference: the scalar,
        # w and the PAKE keys go with this object's last use.
        self._scalar, self._w, self._result, self._keys = 0, 0, None, None
