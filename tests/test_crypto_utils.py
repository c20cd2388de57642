"""crypto_utils: published known-answer vectors through the project's own functions,
the key schedule's separation properties, and tamper cases named after the fault."""

from __future__ import annotations

import inspect
import re

import pytest

from securex import protocol
from crypto_utils import (
    KEY_BYTES,
    MAX_COUNTER,
    PASSPHRASE_WORDS,
    SALT_BYTES,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    SESSION_ID_BYTES,
    TAG_BYTES,
    derive_room_keys,
    format_fingerprint,
    generate_passphrase,
    hkdf_sha256,
    new_salt,
    new_session_id,
    nonce_for,
    open_sealed,
    scrypt_key,
    seal,
    sender_key,
)
from securex.errors import DecryptionError
from securex.protocol import FrameType

h = bytes.fromhex
FAST_N = 16  # scrypt cost for tests where the cost is not the point
SALT = bytes(range(SALT_BYTES))
SESSION = b"\x01\x02\x03\x04\x05\x06\x07\x08"
KEY = bytes(range(KEY_BYTES))
# The one message every decryption failure carries: the reason must not leak.
OPAQUE = str(DecryptionError())


# -- known answers ---------------------------------------------------------

# RFC 7914 section 12. Confirmed against two independent copies (Tor's
# src/test/test_crypto.c and oxicrypto-kdf's tests/kat_scrypt.rs).
@pytest.mark.parametrize("passphrase, salt, n, r, p, expected", [
    ("", b"", 16, 1, 1,
     "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
     "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"),
    ("password", b"NaCl", 1024, 8, 16,
     "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
     "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
], ids=["rfc7914-vector-1", "rfc7914-vector-2"])
def test_scrypt_key_matches_rfc7914(passphrase, salt, n, r, p, expected):
    assert scrypt_key(passphrase, salt, n=n, r=r, p=p, length=64) == h(expected)


# RFC 5869 appendix A.1-A.3 (HKDF-SHA256). Confirmed against several independent
# copies (RustCrypto hkdf, BouncyCastle-style C# table, Perl CryptX tests).
@pytest.mark.parametrize("ikm, salt, info, length, okm", [
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    (bytes(range(0x00, 0x50)).hex(), bytes(range(0x60, 0xb0)).hex(), bytes(range(0xb0, 0x100)).hex(), 82,
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    ("0b" * 22, "", "", 42,
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
], ids=["rfc5869-case-1", "rfc5869-case-2", "rfc5869-case-3-empty-salt-and-info"])
def test_hkdf_sha256_matches_rfc5869(ikm, salt, info, length, okm):
    assert hkdf_sha256(h(ikm), length, info=h(info), salt=h(salt)) == h(okm)


def test_hkdf_sha256_default_salt_is_empty():
    # RFC 5869 case 3 again, relying on the default: the project calls it without salt.
    ikm = h("0b" * 22)
    assert hkdf_sha256(ikm, 42, info=b"") == h(
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")


# McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14:
# 256-bit zero key, IV 000000000000000000000000 (our counter 0), no AAD. Confirmed
# against GNU Nettle's testsuite/gcm-test.c and a Java NistTestVector table.
@pytest.mark.parametrize("plaintext, ciphertext, tag", [
    ("", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    ("00" * 16, "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
], ids=["gcm-spec-case-13", "gcm-spec-case-14"])
def test_seal_matches_gcm_spec(plaintext, ciphertext, tag):
    key, sealed = bytes(32), h(ciphertext + tag)
    assert seal(key, 0, b"", h(plaintext)) == sealed
    assert open_sealed(key, 0, b"", sealed) == h(plaintext)


def test_gcm_spec_vector_fails_under_another_counter():
    # Case 14 is tied to counter 0: any other nonce must not verify.
    sealed = h("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919")
    with pytest.raises(DecryptionError):
        open_sealed(bytes(32), 1, b"", sealed)


# -- the key schedule ------------------------------------------------------

def test_default_scrypt_cost_meets_the_issue_floor():
    assert SCRYPT_N >= 2**15 and SCRYPT_R == 8 and SCRYPT_P == 1
    assert inspect.signature(derive_room_keys).parameters["n"].default == SCRYPT_N
    assert inspect.signature(scrypt_key).parameters["n"].default == SCRYPT_N


def test_room_keys_follow_the_documented_schedule():
    # Pins the labels: changing one silently splits old and new clients into two rooms.
    room_key = scrypt_key("tulip harbor", SALT, n=FAST_N)
    keys = derive_room_keys("tulip harbor", SALT, n=FAST_N)
    assert keys.message_key == hkdf_sha256(room_key, 32, info=b"securex/v1 message key")
    assert keys.key_check == hkdf_sha256(room_key, 32, info=b"securex/v1 key check")
    assert keys.fingerprint == format_fingerprint(hkdf_sha256(room_key, 10, info=b"securex/v1 fingerprint"))
    assert sender_key(keys.message_key, SESSION) == hkdf_sha256(
        keys.message_key, 32, info=b"securex/v1 sender key", salt=SESSION)


def test_each_purpose_gets_its_own_key():
    keys = derive_room_keys("tulip harbor", SALT, n=FAST_N)
    room_key = scrypt_key("tulip harbor", SALT, n=FAST_N)
    send = sender_key(keys.message_key, SESSION)
    assert len({room_key, keys.message_key, keys.key_check, send}) == 4
    assert len(keys.message_key) == len(keys.key_check) == len(send) == KEY_BYTES


def test_different_salts_give_different_keys():
    a = derive_room_keys("tulip harbor", SALT, n=FAST_N)
    b = derive_room_keys("tulip harbor", bytes(SALT_BYTES), n=FAST_N)
    assert a.message_key != b.message_key
    assert a.key_check != b.key_check
    assert a.fingerprint != b.fingerprint


def test_different_passphrases_give_different_keys():
    a = derive_room_keys("tulip harbor", SALT, n=FAST_N)
    b = derive_room_keys("tulip harbour", SALT, n=FAST_N)
    assert a.message_key != b.message_key and a.key_check != b.key_check


def test_composed_and_decomposed_accents_give_the_same_keys():
    composed, decomposed = "caf\u00e9 cr\u00e8me", "cafe\u0301 cre\u0300me"
    assert composed != decomposed
    assert derive_room_keys(composed, SALT, n=FAST_N) == derive_room_keys(decomposed, SALT, n=FAST_N)


def test_sender_keys_differ_per_session_id():
    message_key = derive_room_keys("tulip harbor", SALT, n=FAST_N).message_key
    other = bytes(SESSION_ID_BYTES)
    assert sender_key(message_key, SESSION) != sender_key(message_key, other)
    assert sender_key(message_key, SESSION) == sender_key(message_key, SESSION)


@pytest.mark.parametrize("salt", [b"", bytes(SALT_BYTES - 1), bytes(SALT_BYTES + 1)], ids=["empty", "short", "long"])
def test_derive_room_keys_rejects_a_salt_of_the_wrong_length(salt):
    with pytest.raises(ValueError, match="salt"):
        derive_room_keys("tulip harbor", salt, n=FAST_N)


@pytest.mark.parametrize("session_id", [b"", bytes(SESSION_ID_BYTES - 1), bytes(SESSION_ID_BYTES + 1)],
                         ids=["empty", "short", "long"])
def test_sender_key_rejects_a_session_id_of_the_wrong_length(session_id):
    with pytest.raises(ValueError, match="session id"):
        sender_key(KEY, session_id)


def test_room_keys_repr_hides_the_keys():
    keys = derive_room_keys("tulip harbor", SALT, n=FAST_N)
    text = repr(keys)
    assert keys.fingerprint in text
    for secret in (keys.message_key, keys.key_check):
        assert secret.hex() not in text
        assert repr(secret) not in text
    assert "message_key" not in text and "key_check" not in text


def test_random_values_come_from_the_injected_source():
    requests: list[int] = []

    def randbytes(count: int) -> bytes:
        requests.append(count)
        return bytes([0xab]) * count

    assert new_session_id(randbytes) == bytes([0xab]) * SESSION_ID_BYTES
    assert new_salt(randbytes) == bytes([0xab]) * SALT_BYTES
    assert requests == [SESSION_ID_BYTES, SALT_BYTES]
    assert len(new_session_id()) == SESSION_ID_BYTES and len(new_salt()) == SALT_BYTES
    assert new_salt() != new_salt()


# -- nonces ----------------------------------------------------------------

@pytest.mark.parametrize("counter, nonce", [
    (0, "000000000000000000000000"),
    (1, "000000000000000000000001"),
    (0x0102030405060708, "000000000102030405060708"),
    (MAX_COUNTER, "00000000ffffffffffffffff"),
])
def test_nonce_is_four_zero_bytes_then_the_big_endian_counter(counter, nonce):
    assert nonce_for(counter) == h(nonce)


@pytest.mark.parametrize("counter", [-1, MAX_COUNTER + 1])
def test_nonce_for_rejects_a_counter_out_of_range(counter):
    with pytest.raises(ValueError, match="counter"):
        nonce_for(counter)


@pytest.mark.parametrize("counter", [-1, MAX_COUNTER + 1])
def test_seal_refuses_a_counter_out_of_range(counter):
    with pytest.raises(ValueError):
        seal(KEY, counter, b"", b"hi")


# -- round trips -----------------------------------------------------------

@pytest.mark.parametrize("plaintext", [b"", b"hello, room", bytes(range(256)), bytes(range(256)) * 256],
                         ids=["empty", "ascii", "binary", "64KiB"])
@pytest.mark.parametrize("counter", [0, 7, MAX_COUNTER])
def test_round_trip(plaintext, counter):
    aad = protocol.message_aad(SESSION, counter)
    sealed = seal(KEY, counter, aad, plaintext)
    assert len(sealed) == len(plaintext) + TAG_BYTES
    assert open_sealed(KEY, counter, aad, sealed) == plaintext


def test_same_plaintext_under_two_counters_gives_different_ciphertexts():
    assert seal(KEY, 1, b"", b"hello") != seal(KEY, 2, b"", b"hello")


# -- tampering: every fault is one opaque DecryptionError --------------------

def _sealed(plaintext: bytes = b"meet at noon", counter: int = 5) -> tuple[bytes, bytes]:
    aad = protocol.message_aad(SESSION, counter)
    return aad, seal(KEY, counter, aad, plaintext)


def _assert_opaque_failure(key: bytes, counter: int, aad: bytes, sealed: bytes) -> None:
    with pytest.raises(DecryptionError) as caught:
        open_sealed(key, counter, aad, sealed)
    assert str(caught.value) == OPAQUE


@pytest.mark.parametrize("index", [-1, -TAG_BYTES], ids=["last", "first"])
def test_flipped_tag_byte(index):
    aad, sealed = _sealed()
    tampered = bytearray(sealed)
    tampered[index] ^= 0x01
    _assert_opaque_failure(KEY, 5, aad, bytes(tampered))


@pytest.mark.parametrize("index", [0, 11], ids=["first", "last"])
def test_flipped_ciphertext_byte(index):
    aad, sealed = _sealed()
    tampered = bytearray(sealed)
    tampered[index] ^= 0x80
    _assert_opaque_failure(KEY, 5, aad, bytes(tampered))


@pytest.mark.parametrize("cut", ["empty", "shorter-than-a-tag", "missing-last-byte", "tag-only"])
def test_truncated_frame(cut):
    aad, sealed = _sealed()
    truncated = {
        "empty": b"",
        "shorter-than-a-tag": sealed[:TAG_BYTES - 1],
        "missing-last-byte": sealed[:-1],
        "tag-only": sealed[-TAG_BYTES:],
    }[cut]
    _assert_opaque_failure(KEY, 5, aad, truncated)


def test_wrong_key():
    aad, sealed = _sealed()
    _assert_opaque_failure(bytes(KEY_BYTES), 5, aad, sealed)


def test_another_members_sender_key():
    message_key = derive_room_keys("tulip harbor", SALT, n=FAST_N).message_key
    aad = protocol.message_aad(SESSION, 5)
    sealed = seal(sender_key(message_key, SESSION), 5, aad, b"hi")
    _assert_opaque_failure(sender_key(message_key, bytes(SESSION_ID_BYTES)), 5, aad, sealed)


@pytest.mark.parametrize("other_counter", [4, 6, 0, MAX_COUNTER])
def test_replayed_counter(other_counter):
    # The same ciphertext presented under another counter (nonce) must not open,
    # even with the associated data matching that counter.
    _, sealed = _sealed(counter=5)
    _assert_opaque_failure(KEY, other_counter, protocol.message_aad(SESSION, other_counter), sealed)


@pytest.mark.parametrize("counter", [-1, MAX_COUNTER + 1])
def test_counter_out_of_range_on_open(counter):
    aad, sealed = _sealed()
    _assert_opaque_failure(KEY, counter, aad, sealed)


def _aad(version: int = protocol.PROTOCOL_VERSION, frame_type: int = FrameType.MESSAGE,
         session: bytes = SESSION, seq: int = 5) -> bytes:
    return b"SX" + bytes([version, frame_type]) + session + seq.to_bytes(8, "big")


def test_aad_helper_matches_message_aad():
    assert _aad() == protocol.message_aad(SESSION, 5)


@pytest.mark.parametrize("wrong", [
    pytest.param({"version": protocol.PROTOCOL_VERSION + 1}, id="version"),
    pytest.param({"frame_type": FrameType.RELAYED}, id="type"),
    pytest.param({"session": b"\x01\x02\x03\x04\x05\x06\x07\x09"}, id="sender-session"),
    pytest.param({"seq": 6}, id="seq"),
])
def test_wrong_associated_data(wrong):
    aad, sealed = _sealed(counter=5)
    assert aad == _aad()
    wrong_aad = _aad(**wrong)
    assert wrong_aad != aad
    _assert_opaque_failure(KEY, 5, wrong_aad, sealed)


def test_missing_associated_data():
    _, sealed = _sealed()
    _assert_opaque_failure(KEY, 5, b"", sealed)


# -- fingerprints and passphrases -------------------------------------------

FINGERPRINT = re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{4})*")


def test_fingerprint_is_groups_of_four_base32_characters():
    assert format_fingerprint(bytes(10)) == "AAAA-AAAA-AAAA-AAAA"
    assert format_fingerprint(b"\xff" * 10) == "7777-7777-7777-7777"
    fingerprint = derive_room_keys("tulip harbor", SALT, n=FAST_N).fingerprint
    assert FINGERPRINT.fullmatch(fingerprint)
    assert len(fingerprint.replace("-", "")) * 5 >= 80


def test_fingerprint_of_an_odd_length_digest_drops_padding():
    # 5 bytes -> 8 base32 characters; 6 bytes -> 10 characters, padding stripped.
    assert format_fingerprint(b"\x00" * 5) == "AAAA-AAAA"
    assert format_fingerprint(b"\x00" * 6) == "AAAA-AAAA-AA"


PROQUINT = re.compile(r"[bdfghjklmnprstvz][aiou][bdfghjklmnprstvz][aiou][bdfghjklmnprstvz]")


def test_passphrase_has_at_least_80_bits():
    requested: list[int] = []

    def randbytes(count: int) -> bytes:
        requested.append(count)
        return bytes(count)

    generate_passphrase(randbytes)
    assert requested == [2 * PASSPHRASE_WORDS]
    assert 8 * requested[0] >= 80
    words = generate_passphrase().split("-")
    assert len(words) == PASSPHRASE_WORDS >= 6
    assert all(PROQUINT.fullmatch(word) for word in words)


@pytest.mark.parametrize("raw, expected", [
    (bytes(12), "babab-babab-babab-babab-babab-babab"),
    (b"\xff" * 12, "zuzuz-zuzuz-zuzuz-zuzuz-zuzuz-zuzuz"),
    # Wilkerson's proquint examples: 127.0.0.1, 63.84.220.193, 63.118.7.35.
    (bytes([127, 0, 0, 1, 63, 84, 220, 193, 63, 118, 7, 35]),
     "lusab-babad-gutih-tugad-gutuk-bisog"),
], ids=["all-zero", "all-ff", "proquint-spec"])
def test_passphrase_is_deterministic_with_injected_bytes(raw, expected):
    assert generate_passphrase(lambda count: raw[:count]) == expected


def test_fresh_passphrases_differ():
    assert generate_passphrase() != generate_passphrase()

