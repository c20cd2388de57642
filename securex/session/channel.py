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

The cipher of the next record each way can be set up ahead (``prepare``, while
the session is idle): both counters are known before the records are, and the
set-up is most of what sealing or opening a short text costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto_utils import MAX_COUNTER, MessageCipher
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
    _sealer: MessageCipher | None = field(default=None, repr=False)    # for counter next_send
    _opener: MessageCipher | None = field(default=None, repr=False)    # for counter last_received + 1

    @property
    def unprepared(self) -> bool:
        """``prepare`` has something to do."""
        return ((self._sealer is None and self.next_send <= MAX_COUNTER)
                or (self._opener is None and self.last_received < MAX_COUNTER))

    def prepare(self) -> None:
        """Set up the ciphers of the next record to send and of the next expected,
        unless that is done already, so that those records cost only their encryption."""
        if self._sealer is None and self.next_send <= MAX_COUNTER:
            self._sealer = self._cipher(self.send_key, self.next_send)
        if self._opener is None and self.last_received < MAX_COUNTER:
            self._opener = self._cipher(self.receive_key, self.last_received + 1)

    def seal_record(self, plaintext: bytes) -> bytes:
        """A RECORD body carrying ``plaintext``, ready to route to the peer."""
        counter = self.next_send
        if counter > MAX_COUNTER:
            raise OverflowError("channel counter exhausted")   # 2**64 records: never in practice
        self.next_send += 1
        cipher, self._sealer = self._sealer, None
        if cipher is None or cipher.counter != counter:
            cipher = self._cipher(self.send_key, counter)
        return encode_record(counter, cipher.seal(plaintext))

    def open_record(self, payload: bytes) -> bytes:
        """The plaintext of a RECORD payload (after the kind byte). DecryptionError,
        the one opaque failure, for a forgery, a tampered record, a replay or a
        record from another channel; ProtocolError if it is not even a record."""
        counter, sealed = parse_record(payload)
        if counter <= self.last_received:
            raise DecryptionError()
        cipher, self._opener = self._opener, None     # used once, whatever the outcome
        if cipher is None or cipher.counter != counter:
            cipher = self._cipher(self.receive_key, counter)
        plaintext = cipher.open(sealed)
        self.last_received = counter
        return plaintext

    def _cipher(self, key: bytes, counter: int) -> MessageCipher:
        return MessageCipher(key, counter, channel_aad(BodyKind.RECORD, self.nonce_a, self.nonce_b, counter))
