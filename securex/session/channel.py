"""One verified pair's encrypted channel. Sans-IO: bytes in, bytes out.

Each direction has its own key (HKDF over the SPAKE2 output, distinct labels)
and its own counter, which is the explicit GCM nonce and part of the associated
data, so a nonce never repeats under a key. Counter 0 of each direction carried
that side's sealed identity; records start at 1.

A record whose counter is not above the last one opened is refused before any
decryption (a replay, or reordering by the relay); a gap is allowed here and
noticed by the message layer, which knows which gaps matter to a person.
Keys live only as long as this object: a new connection means a new SPAKE2 run
and new keys, so nothing recorded can be replayed into another connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto_utils import MAX_COUNTER, open_sealed, seal
from securex.errors import DecryptionError
from securex.session.peer_wire import BodyKind, channel_aad, encode_record, parse_record


@dataclass
class PairChannel:
    send_key: bytes = field(repr=False)
    receive_key: bytes = field(repr=False)
    nonce_a: bytes
    nonce_b: bytes
    next_send: int = 1
    last_received: int = 0

    def seal_record(self, plaintext: bytes) -> bytes:
        """A RECORD body carrying ``plaintext``, ready to route to the peer."""
        counter = self.next_send
        if counter > MAX_COUNTER:
            raise OverflowError("channel counter exhausted")   # 2**64 records: never in practice
        self.next_send += 1
        aad = channel_aad(BodyKind.RECORD, self.nonce_a, self.nonce_b, counter)
        return encode_record(counter, seal(self.send_key, counter, aad, plaintext))

    def open_record(self, payload: bytes) -> bytes:
        """The plaintext of a RECORD payload (after the kind byte). DecryptionError,
        the one opaque failure, for a forgery, a tampered record, a replay or a
        record from another channel; ProtocolError if it is not even a record."""
        counter, sealed = parse_record(payload)
        if counter <= self.last_received:
            raise DecryptionError()
        aad = channel_aad(BodyKind.RECORD, self.nonce_a, self.nonce_b, counter)
        plaintext = open_sealed(self.receive_key, counter, aad, sealed)
        self.last_received = counter
        return plaintext
