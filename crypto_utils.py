"""Every cryptographic primitive Secure X uses, as small pure functions over bytes.

Nothing here touches a socket, a thread or a file. Randomness is a parameter
(``randbytes``) at the lowest layer, so tests feed fixed values and reproduce the
published vectors (RFC 9382 SPAKE2, RFC 7914 scrypt, RFC 5869 HKDF, RFC 8032
Ed25519, the GCM specification, RFC 6962's Merkle tree hash) through these very
functions. All of it is pycryptodome, used as documented (the file digest is
hashlib's SHA-256, the fastest here); nothing is home-made but the glue.

Key schedule (version 2; docs/PROTOCOL.md has the whole protocol)::

    w       = scrypt(NFKC(passphrase), salt=PAKE_SALT, N=2^16, r=8, p=1, 40 bytes) mod n
    SPAKE2  = RFC 9382, SPAKE2-P256-SHA256-HKDF-HMAC; newcomer = A, member = B;
              A = "securex/v2 newcomer" || nonce_A, B = "securex/v2 member" || nonce_B
    Ke || Ka = SHA256(TT);  KcA || KcB = HKDF(salt="", Ka, "ConfirmationKeys" || AAD, 32)
    cA = HMAC(KcA, TT), cB = HMAC(KcB, TT)                       (compared in constant time)
    newcomer->member key = HKDF-SHA256(Ke, salt=nonce_A||nonce_B, info="securex/v2 channel A->B")
    member->newcomer key = HKDF-SHA256(Ke, salt=nonce_A||nonce_B, info="securex/v2 channel B->A")
    identity proof      = Ed25519 signature over "securex/v2 identity proof" || role || SHA256(TT)
    safety code         = base32(SHA256("securex/v2 safety code" || identity public key)[:10])
    file digest         = RFC 6962 Merkle Tree Hash, one leaf per chunk as sent

Every AES-256-GCM nonce is explicit: four zero bytes then a 64-bit counter the
caller owns and never reuses under one key. Every decryption failure is the same
opaque ``DecryptionError``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

try:
    from Crypto.Cipher import AES
    from Crypto.Hash import HMAC, SHA256
    from Crypto.Protocol.KDF import HKDF, scrypt
    from Crypto.PublicKey import ECC
    from Crypto.PublicKey.ECC import EccPoint
    from Crypto.Signature import eddsa
except ModuleNotFoundError as missing:   # a one-line fix beats a traceback
    if not (missing.name or "").startswith("Crypto"):
        raise
    from securex.errors import MissingDependencyError
    raise MissingDependencyError() from None

from securex.errors import DecryptionError

RandBytes = Callable[[int], bytes]
Bytes = bytes | bytearray | memoryview     # what pycryptodome and hashlib read without a copy

# -- sizes and costs ------------------------------------------------------------

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SESSION_NONCE_BYTES = 16       # each side's fresh random nonce per PAKE run
POINT_BYTES = 65               # uncompressed SEC1: 04 || x || y
CONFIRM_BYTES = 32             # HMAC-SHA256
IDENTITY_KEY_BYTES = 32        # Ed25519 public key, and the private seed
SIGNATURE_BYTES = 64
MAX_COUNTER = 2**64 - 1
CIPHER_NAME = "AES-256-GCM"

SCRYPT_N = 2**16   # about 0.12 s and 64 MiB once per run of the client; the design asks >= 2^15
SCRYPT_R = 8
SCRYPT_P = 1
# A fixed, public salt: w is never sent or stored anywhere, so there is nothing
# recorded to run a dictionary against; the salt only separates Secure X's w from
# any other use of the same passphrase.
PAKE_SALT = b"securex/v2 passphrase to SPAKE2 w"
# RFC 9382 section 3.2: reduce an output at least 64 bits longer than the group
# order, so the bias of the reduction is negligible.
_W_BYTES = 32 + 8

PROTOCOL_LABEL = b"securex/v2"
_LABEL_A_TO_B = b"securex/v2 channel A->B"
_LABEL_B_TO_A = b"securex/v2 channel B->A"
_LABEL_TRANSCRIPT = b"securex/v2 transcript"
_LABEL_IDENTITY_PROOF = b"securex/v2 identity proof"
_LABEL_SAFETY_CODE = b"securex/v2 safety code"
_LABEL_MEMBER_TAG = b"securex/v2 member tag"


# -- KDFs ---------------------------------------------------------------------------

def scrypt_key(passphrase: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
               p: int = SCRYPT_P, length: int = KEY_BYTES) -> bytes:
    """Stretch a passphrase with scrypt. NFKC-normalised, so the same words typed on
    different keyboards (composed or decomposed accents, full-width digits) agree."""
    password = unicodedata.normalize("NFKC", passphrase).encode("utf-8")
    return scrypt(password, salt, key_len=length, N=n, r=r, p=p)


def hkdf_sha256(master: bytes, length: int, *, info: bytes, salt: bytes = b"") -> bytes:
    """HKDF (RFC 5869) with SHA-256; ``info`` names the purpose of the key."""
    return HKDF(master, length, salt, SHA256, num_keys=1, context=info)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return HMAC.new(key, data, SHA256).digest()


def sha256(data: bytes) -> bytes:
    return SHA256.new(data).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


# -- SPAKE2 over P-256 (RFC 9382) --------------------------------------------------------

# The field prime p, the group order n and the fixed points M and N of RFC 9382
# section 6 (P-256; p and n from SEC 2).
P256_PRIME = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_M_COMPRESSED = bytes.fromhex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f")
_N_COMPRESSED = bytes.fromhex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49")


def _point_from_compressed(encoded: bytes) -> EccPoint:
    return ECC.import_key(encoded, curve_name="P-256").pointQ


_G = ECC.construct(curve="P-256", d=1).pointQ
_M = _point_from_compressed(_M_COMPRESSED)
_N = _point_from_compressed(_N_COMPRESSED)

ROLE_A = b"A"   # the newcomer
ROLE_B = b"B"   # a member already in the room


@functools.lru_cache(maxsize=4)
def passphrase_to_w(passphrase: str, *, n: int = SCRYPT_N) -> int:
    """The SPAKE2 password scalar: scrypt over the NFKC passphrase, reduced mod the
    group order. Costs one scrypt, so it is remembered for the few passphrases a
    process uses (a reconnect, a corrected typo); it never leaves the process."""
    return int.from_bytes(scrypt_key(passphrase, PAKE_SALT, n=n, length=_W_BYTES), "big") % P256_ORDER


def encode_point(point: EccPoint) -> bytes:
    x, y = point.xy
    return b"\x04" + int(x).to_bytes(32, "big") + int(y).to_bytes(32, "big")


def decode_point(encoded: bytes) -> EccPoint:
    """A peer's point: 65-byte uncompressed SEC1, on the curve, not the identity.
    Raises DecryptionError (the one opaque failure) for anything else."""
    if len(encoded) != POINT_BYTES or encoded[0] != 4:
        raise DecryptionError()
    x, y = int.from_bytes(encoded[1:33], "big"), int.from_bytes(encoded[33:], "big")
    if x >= P256_PRIME or y >= P256_PRIME:       # one point, one encoding: no x + p aliases
        raise DecryptionError()
    try:
        point = EccPoint(x, y, curve="P-256")   # checks the coordinates and that it is on the curve
    except ValueError:
        raise DecryptionError() from None
    if point.is_point_at_infinity():            # pycryptodome writes the identity as (0, 0)
        raise DecryptionError()
    return point


def random_scalar(randbytes: RandBytes = secrets.token_bytes) -> int:
    """A uniform scalar in 1..n-1 (rejection sampling, no modular bias)."""
    while True:
        candidate = int.from_bytes(randbytes(32), "big")
        if 0 < candidate < P256_ORDER:
            return candidate


def spake2_share(role: bytes, w: int, scalar: int) -> bytes:
    """pA = x*G + w*M for A, pB = y*G + w*N for B, encoded."""
    blind = _M if role == ROLE_A else _N
    return encode_point(_G * scalar + blind * w)


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(struct.pack("<Q", len(part)) + part for part in parts)


def spake2_transcript(identity_a: bytes, identity_b: bytes, share_a: bytes, share_b: bytes,
                      shared_point: bytes, w: int) -> bytes:
    """TT of RFC 9382 section 3.3: each part preceded by its 8-byte little-endian length."""
    return _length_prefixed(identity_a, identity_b, share_a, share_b, shared_point,
                            w.to_bytes(32, "big"))


def spake2_shared_point(role: bytes, w: int, scalar: int, peer_share: bytes) -> bytes:
    """K = h*x*(pB - w*N) for A, h*y*(pA - w*M) for B (h = 1 on P-256), encoded.
    The peer's share is validated first: DecryptionError if it is not a proper point."""
    unblind = _N if role == ROLE_A else _M
    shared = (decode_point(peer_share) + (-(unblind * w))) * scalar
    if shared.is_point_at_infinity():
        raise DecryptionError()
    return encode_point(shared)


@dataclass(frozen=True)
class Spake2KeySchedule:
    """RFC 9382 section 4, from the transcript. Never printed."""

    ke: bytes = field(repr=False)
    ka: bytes = field(repr=False)
    kc_a: bytes = field(repr=False)
    kc_b: bytes = field(repr=False)
    confirm_a: bytes = field(repr=False)
    confirm_b: bytes = field(repr=False)


def spake2_key_schedule(transcript: bytes, aad: bytes) -> Spake2KeySchedule:
    digest = sha256(transcript)
    ke, ka = digest[:16], digest[16:]
    confirmation_keys = hkdf_sha256(ka, 32, info=b"ConfirmationKeys" + aad)
    kc_a, kc_b = confirmation_keys[:16], confirmation_keys[16:]
    return Spake2KeySchedule(ke, ka, kc_a, kc_b, hmac_sha256(kc_a, transcript), hmac_sha256(kc_b, transcript))


@dataclass(frozen=True)
class Spake2Result:
    """What one side keeps from a finished SPAKE2 run. Never printed."""

    ke: bytes = field(repr=False)
    my_confirmation: bytes = field(repr=False)
    peer_confirmation: bytes = field(repr=False)
    transcript_digest: bytes = field(repr=False)

    def peer_confirms(self, received: bytes) -> bool:
        """Constant-time check of the peer's confirmation MAC."""
        return constant_time_equal(self.peer_confirmation, received)


def spake2_finish(role: bytes, w: int, scalar: int, identity_a: bytes, identity_b: bytes,
                  share_a: bytes, share_b: bytes, *, aad: bytes = PROTOCOL_LABEL) -> Spake2Result:
    """Complete a run once both shares are known (DecryptionError for a bad peer share)."""
    peer_share = share_b if role == ROLE_A else share_a
    shared = spake2_shared_point(role, w, scalar, peer_share)
    transcript = spake2_transcript(identity_a, identity_b, share_a, share_b, shared, w)
    keys = spake2_key_schedule(transcript, aad)
    mine, theirs = (keys.confirm_a, keys.confirm_b) if role == ROLE_A else (keys.confirm_b, keys.confirm_a)
    return Spake2Result(keys.ke, mine, theirs, sha256(_LABEL_TRANSCRIPT + transcript))


def pake_identity(role: bytes, nonce: bytes) -> bytes:
    """The A or B identity string of our SPAKE2 runs: the role and that side's fresh
    nonce, so both nonces are bound into the transcript."""
    return (b"securex/v2 newcomer" if role == ROLE_A else b"securex/v2 member") + nonce


# -- pairwise channel keys ------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelKeys:
    """The two directional keys of one verified pair. Never printed."""

    a_to_b: bytes = field(repr=False)
    b_to_a: bytes = field(repr=False)

    def for_role(self, role: bytes) -> tuple[bytes, bytes]:
        """(sending key, receiving key) for the side playing ``role``."""
        return (self.a_to_b, self.b_to_a) if role == ROLE_A else (self.b_to_a, self.a_to_b)


def channel_keys(ke: bytes, nonce_a: bytes, nonce_b: bytes) -> ChannelKeys:
    salt = nonce_a + nonce_b
    return ChannelKeys(hkdf_sha256(ke, KEY_BYTES, info=_LABEL_A_TO_B, salt=salt),
                       hkdf_sha256(ke, KEY_BYTES, info=_LABEL_B_TO_A, salt=salt))


# -- AES-256-GCM with explicit counter nonces ---------------------------------------------------

def nonce_for(counter: int) -> bytes:
    """The 12-byte GCM nonce for a counter: four zero bytes, then the big-endian counter."""
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError("counter out of range")
    return struct.pack(">IQ", 0, counter)


def _gcm(key: bytes, counter: int, aad: bytes):  # pycryptodome's GcmMode, its AAD given
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce_for(counter), mac_len=TAG_BYTES)
    cipher.update(aad)
    return cipher


class MessageCipher:
    """AES-256-GCM for exactly one message under ``key`` and ``counter``, with its
    associated data already taken in.

    Made ahead of time where the counter is known before the message is (a
    channel's next record), so that the message itself costs only its encryption:
    pycryptodome's set-up for each nonce (the key schedules and the GHASH table)
    is about three quarters of sealing a short text. It seals or opens one
    message, once; the caller owns the counter as for ``seal``."""

    __slots__ = ("_gcm", "counter")

    def __init__(self, key: bytes, counter: int, aad: bytes) -> None:
        self.counter = counter
        self._gcm = _gcm(key, counter, aad)

    def _take(self):
        gcm, self._gcm = self._gcm, None
        if gcm is None:
            raise RuntimeError("a MessageCipher seals or opens one message only")
        return gcm

    def seal(self, plaintext: Bytes) -> bytes:
        """Ciphertext || 16-byte tag."""
        ciphertext, tag = self._take().encrypt_and_digest(plaintext)
        return ciphertext + tag

    def open(self, sealed: Bytes) -> bytes:
        """The plaintext of what ``seal`` made; the one opaque DecryptionError otherwise."""
        gcm = self._take()
        if len(sealed) < TAG_BYTES:
            raise DecryptionError()
        try:
            return gcm.decrypt_and_verify(sealed[:-TAG_BYTES], sealed[-TAG_BYTES:])
        except ValueError:
            # pycryptodome says only "MAC check failed"; the reason must not leak anyway.
            raise DecryptionError() from None


def seal(key: bytes, counter: int, aad: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM encrypt; returns ciphertext || 16-byte tag. The caller owns the
    counter and must never reuse one under the same key."""
    return MessageCipher(key, counter, aad).seal(plaintext)


def seal_into(key: bytes, counter: int, aad: bytes, plaintext: Bytes, out: memoryview) -> None:
    """``seal``, written into ``out`` (exactly ``len(plaintext) + TAG_BYTES`` bytes)
    instead of new objects: for file chunks, where every fresh half-megabyte buffer
    costs more in page faults than encrypting it (pycryptodome's ``output``)."""
    if len(out) != len(plaintext) + TAG_BYTES:
        raise ValueError("the output must hold the ciphertext and the tag exactly")
    cipher = _gcm(key, counter, aad)
    cipher.encrypt(plaintext, output=out[:len(plaintext)])
    out[len(plaintext):] = cipher.digest()


def open_sealed(key: bytes, counter: int, aad: bytes, sealed: Bytes) -> bytes:
    """Decrypt and verify what ``seal`` made. Every failure is one opaque DecryptionError."""
    if len(sealed) < TAG_BYTES or not 0 <= counter <= MAX_COUNTER:
        raise DecryptionError()
    return MessageCipher(key, counter, aad).open(sealed)


def open_into(key: bytes, counter: int, aad: bytes, sealed: Bytes, out: memoryview) -> memoryview:
    """``open_sealed``, written into ``out`` (at least the plaintext's length); returns
    the part of ``out`` that holds the plaintext. On a DecryptionError ``out`` holds
    unverified bytes: the caller must not use them."""
    if len(sealed) < TAG_BYTES or not 0 <= counter <= MAX_COUNTER or len(out) < len(sealed) - TAG_BYTES:
        raise DecryptionError()
    plaintext = out[:len(sealed) - TAG_BYTES]
    try:
        _gcm(key, counter, aad).decrypt_and_verify(sealed[:-TAG_BYTES], sealed[-TAG_BYTES:], output=plaintext)
    except ValueError:
        raise DecryptionError() from None
    return plaintext


# -- identities -----------------------------------------------------------------------------------

def new_identity_seed(randbytes: RandBytes = secrets.token_bytes) -> bytes:
    """A fresh Ed25519 private key (its 32-byte seed, RFC 8032)."""
    return randbytes(IDENTITY_KEY_BYTES)


def identity_public_key(seed: bytes) -> bytes:
    return eddsa.import_private_key(seed).public_key().export_key(format="raw")


def sign(seed: bytes, message: bytes) -> bytes:
    """Ed25519 (RFC 8032, pure) signature of ``message``."""
    return eddsa.new(eddsa.import_private_key(seed), "rfc8032").sign(message)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True only for a valid Ed25519 signature; False for anything malformed."""
    if len(public_key) != IDENTITY_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        eddsa.new(eddsa.import_public_key(public_key), "rfc8032").verify(message, signature)
    except ValueError:
        return False
    return True


def identity_proof_message(role: bytes, transcript_digest: bytes) -> bytes:
    """What each side signs: its role and this run's transcript, so a proof can be
    neither replayed into another run nor reflected back as the other side's."""
    return _LABEL_IDENTITY_PROOF + role + transcript_digest


def safety_code(public_key: bytes) -> str:
    """80 bits of the identity key's hash, in groups of four base32 characters:
    ``K4F2 9XQ7 M3TB 6PLA``. Two people compare it out loud."""
    return format_code(sha256(_LABEL_SAFETY_CODE + public_key)[:10])


def format_code(digest: bytes) -> str:
    """Groups of four base32 characters separated by spaces, easy to read out."""
    text = base64.b32encode(digest).decode("ascii").rstrip("=")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


MEMBER_TAG_BYTES = 8


def member_tag(public_key: bytes) -> bytes:
    """A short name for a member's identity key, for listing who is in a room view
    (inside encrypted messages only)."""
    return sha256(_LABEL_MEMBER_TAG + public_key)[:MEMBER_TAG_BYTES]


# -- file chunks (bulk data sealed once, fanned out by the relay) ----------------------------------------

FILE_ID_BYTES = 16


def file_chunk_aad(file_id: bytes, index: int, final: bool) -> bytes:
    """The chunk's place in its file, bound in: a chunk cannot be moved, reused in
    another file, or passed off as the last one."""
    return PROTOCOL_LABEL + b" file chunk" + file_id + struct.pack(">QB", index, final)


def seal_chunk(key: bytes, file_id: bytes, index: int, final: bool, data: bytes, seal_no: int) -> bytes:
    """Seal one chunk; ``seal_no`` is the nonce counter, one per sealing of this file.
    A chunk sent again after a reconnect may be read from disk again, and the file
    may have changed meanwhile: a fresh number keeps a nonce from ever sealing two
    different plaintexts (the final hash check then refuses the changed file)."""
    return seal(key, seal_no, file_chunk_aad(file_id, index, final), data)


def seal_chunk_into(key: bytes, file_id: bytes, index: int, final: bool, data: Bytes, seal_no: int,
                    out: memoryview) -> None:
    """``seal_chunk`` written into ``out`` (see ``seal_into``)."""
    seal_into(key, seal_no, file_chunk_aad(file_id, index, final), data, out)


def open_chunk_into(key: bytes, file_id: bytes, index: int, final: bool, sealed: Bytes, seal_no: int,
                    out: memoryview) -> memoryview:
    """Open what ``seal_chunk`` made, into ``out`` (see ``open_into``)."""
    return open_into(key, seal_no, file_chunk_aad(file_id, index, final), sealed, out)


def new_key(randbytes: RandBytes = secrets.token_bytes) -> bytes:
    return randbytes(KEY_BYTES)


def new_nonce(randbytes: RandBytes = os.urandom) -> bytes:
    return randbytes(SESSION_NONCE_BYTES)


# -- file digests: a Merkle tree hash over a file's chunks --------------------------------------------

# RFC 6962 §2.1 (Certificate Transparency's Merkle Tree Hash), its leaves a file's
# chunks as they are sent. Unlike one SHA-256 over the whole file, its leaves can be
# hashed on several cores at once: the sender, which must hash the whole file before
# it can offer it, does so in a fraction of the time (hashlib lets go of the GIL).
_TREE_LEAF, _TREE_NODE = b"\x00", b"\x01"      # RFC 6962: leaves and inner nodes never collide
DIGEST_BYTES = 32


def tree_leaf_hash(chunk: Bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): one chunk's leaf."""
    hasher = hashlib.sha256(_TREE_LEAF)
    hasher.update(chunk)
    return hasher.digest()


class TreeHash:
    """RFC 6962's Merkle Tree Hash fed one leaf at a time, in O(log n) memory: the
    roots of the perfect subtrees so far, largest first, two of a size joined at
    once. The root folds them from the right, which is the RFC's split at the
    largest power of two below n, at every level."""

    def __init__(self) -> None:
        self._subtrees: list[tuple[int, bytes]] = []     # (leaves under it, its hash)
        self.leaves = 0

    def add_leaf_hash(self, leaf_hash: bytes) -> None:
        size, node = 1, leaf_hash
        while self._subtrees and self._subtrees[-1][0] == size:
            left_size, left = self._subtrees.pop()
            size, node = left_size + size, hashlib.sha256(_TREE_NODE + left + node).digest()
        self._subtrees.append((size, node))
        self.leaves += 1

    def root(self) -> bytes:
        """Of no leaves, SHA-256 of nothing."""
        if not self._subtrees:
            return hashlib.sha256(b"").digest()
        node = self._subtrees[-1][1]
        for _, left in reversed(self._subtrees[:-1]):
            node = hashlib.sha256(_TREE_NODE + left + node).digest()
        return node


def tree_root(leaf_hashes: list[bytes]) -> bytes:
    """The Merkle Tree Hash of leaves given by their hashes (RFC 6962 §2.1)."""
    tree = TreeHash()
    for leaf_hash in leaf_hashes:
        tree.add_leaf_hash(leaf_hash)
    return tree.root()


# -- passphrases ---------------------------------------------------------------------------------------

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
    """Advice for a passphrase that is easy to guess, or None. Length is a crude
    measure, but the guessing risk it flags is real."""
    if len(passphrase) < WEAK_PASSPHRASE_CHARS:
        return ("This passphrase is short: a stranger on the network gets a few guesses before the "
                "room slows them down. `securex --new-passphrase` makes a strong one.")
    return None
