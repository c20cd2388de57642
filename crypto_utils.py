"""Key derivation, message sealing and fingerprints for Secure X.

Pure functions over bytes, no sockets. Randomness is a parameter at the lowest
layer (``seal`` takes its counter, ``new_session_id`` takes ``randbytes``) so
tests can use fixed vectors.

Key schedule::

    room_key    = scrypt(NFC(passphrase), salt=room salt (random per server run), N=2^16, r=8, p=1)
    message_key = HKDF-SHA256(room_key, info="securex/v1 message key")
    key_check   = HKDF-SHA256(room_key, info="securex/v1 key check")    -> given to the server
    fingerprint = HKDF-SHA256(room_key, info="securex/v1 fingerprint")  -> read out loud
    sender_key  = HKDF-SHA256(message_key, salt=session_id, info="securex/v1 sender key")

Each client connection picks a random 8-byte session id and seals with its own
sender key, using a 64-bit message counter as the AES-GCM nonce, so a nonce
never repeats under one key. The server only ever sees ``key_check``, which
cannot be turned back into any of the other keys.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF, scrypt

from securex.errors import DecryptionError
from securex.protocol import KEY_BYTES, SALT_BYTES, SESSION_ID_BYTES, TAG_BYTES

SCRYPT_N = 2**16  # ~0.12 s and 64 MiB per join on a 2020s laptop; see bench/
SCRYPT_R = 8
SCRYPT_P = 1
NONCE_BYTES = 12
MAX_COUNTER = 2**64 - 1
CIPHER_NAME = "AES-256-GCM"

_LABEL_MESSAGE = b"securex/v1 message key"
_LABEL_KEY_CHECK = b"securex/v1 key check"
_LABEL_FINGERPRINT = b"securex/v1 fingerprint"
_LABEL_SENDER = b"securex/v1 sender key"

RandBytes = Callable[[int], bytes]


def scrypt_key(passphrase: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
               p: int = SCRYPT_P, length: int = KEY_BYTES) -> bytes:
    """Stretch a passphrase with scrypt. NFC-normalised so the same words typed on
    different keyboards give the same key."""
    password = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return scrypt(password, salt, key_len=length, N=n, r=r, p=p)


def hkdf_sha256(master: bytes, length: int, *, info: bytes, salt: bytes = b"") -> bytes:
    """HKDF (RFC 5869) with SHA-256; ``info`` names the purpose of the key."""
    return HKDF(master, length, salt, SHA256, num_keys=1, context=info)


@dataclass(frozen=True)
class RoomKeys:
    """The keys one passphrase and one room salt give. Never printed."""

    message_key: bytes = field(repr=False)
    key_check: bytes = field(repr=False)
    fingerprint: str


def derive_room_keys(passphrase: str, salt: bytes, *, n: int = SCRYPT_N) -> RoomKeys:
    """Passphrase -> purpose-separated keys. Costs one scrypt (about 0.1 s)."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"room salt must be {SALT_BYTES} bytes")
    room_key = scrypt_key(passphrase, salt, n=n)
    return RoomKeys(
        message_key=hkdf_sha256(room_key, KEY_BYTES, info=_LABEL_MESSAGE),
        key_check=hkdf_sha256(room_key, KEY_BYTES, info=_LABEL_KEY_CHECK),
        fingerprint=format_fingerprint(hkdf_sha256(room_key, 10, info=_LABEL_FINGERPRINT)),
    )


def sender_key(message_key: bytes, session_id: bytes) -> bytes:
    """The key one client session seals its messages with."""
    if len(session_id) != SESSION_ID_BYTES:
        raise ValueError(f"session id must be {SESSION_ID_BYTES} bytes")
    return hkdf_sha256(message_key, KEY_BYTES, info=_LABEL_SENDER, salt=session_id)


def nonce_for(counter: int) -> bytes:
    """The 12-byte GCM nonce for a message counter: 4 zero bytes then the counter."""
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError("message counter out of range")
    return struct.pack(">IQ", 0, counter)


def seal(key: bytes, counter: int, aad: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM encrypt; returns ciphertext || 16-byte tag. The caller owns the
    counter and must never reuse one under the same key."""
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce_for(counter), mac_len=TAG_BYTES)
    cipher.update(aad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return ciphertext + tag


def open_sealed(key: bytes, counter: int, aad: bytes, sealed: bytes) -> bytes:
    """Decrypt and verify what ``seal`` made. Every failure is one opaque DecryptionError."""
    if len(sealed) < TAG_BYTES or not 0 <= counter <= MAX_COUNTER:
        raise DecryptionError()
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce_for(counter), mac_len=TAG_BYTES)
    cipher.update(aad)
    try:
        return cipher.decrypt_and_verify(sealed[:-TAG_BYTES], sealed[-TAG_BYTES:])
    except ValueError:
        # pycryptodome says only "MAC check failed"; the reason must not leak anyway.
        raise DecryptionError() from None


def format_fingerprint(digest: bytes) -> str:
    """Groups of four base32 characters, easy to compare out loud: ``K4F2-9XQ7-...``."""
    text = base64.b32encode(digest).decode("ascii").rstrip("=")
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def new_session_id(randbytes: RandBytes = os.urandom) -> bytes:
    return randbytes(SESSION_ID_BYTES)


def new_salt(randbytes: RandBytes = os.urandom) -> bytes:
    return randbytes(SALT_BYTES)


# Proquints (Wilkerson, "A Proquint is a PRO-nouncable QUINT-uplet"): 16 bits
# become consonant-vowel-consonant-vowel-consonant, easy to say and spell.
_PROQUINT_CONSONANTS = "bdfghjklmnprstvz"
_PROQUINT_VOWELS = "aiou"
PASSPHRASE_WORDS = 6  # 6 x 16 = 96 bits, above the 80 we promise


def _proquint(value: int) -> str:
    c, v = _PROQUINT_CONSONANTS, _PROQUINT_VOWELS
    return (c[(value >> 12) & 15] + v[(value >> 10) & 3] + c[(value >> 6) & 15]
            + v[(value >> 4) & 3] + c[value & 15])


def generate_passphrase(randbytes: RandBytes = secrets.token_bytes,
                        words: int = PASSPHRASE_WORDS) -> str:
    """A fresh passphrase of ``16 * words`` random bits, e.g. ``lusab-babad-gutih-...``."""
    raw = randbytes(2 * words)
    return "-".join(_proquint(int.from_bytes(raw[i:i + 2], "big")) for i in range(0, len(raw), 2))


WEAK_PASSPHRASE_CHARS = 16


def passphrase_warning(passphrase: str) -> str | None:
    """Advice for a passphrase that is easy to guess offline, or None. Length is a
    crude measure, but the offline-guessing risk it flags is real."""
    if len(passphrase) < WEAK_PASSPHRASE_CHARS:
        return ("This passphrase is short: anyone who records the traffic can try to guess it "
                "offline. `python client.py --new-passphrase` makes a strong one.")
    return None
