"""crypto_utils: published known-answer vectors through the project's own functions,
point validation, the key schedule's separation, and tamper cases named after the fault."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crypto_utils as cu
from crypto_utils import (
    MAX_COUNTER, P256_ORDER, MessageCipher, PASSPHRASE_WORDS, ROLE_A, ROLE_B, SCRYPT_N, SCRYPT_P, SCRYPT_R, TAG_BYTES,
    channel_keys, decode_point, generate_passphrase, hkdf_sha256, identity_public_key, nonce_for,
    open_chunk_into, open_into, open_sealed, passphrase_to_w, safety_code, scrypt_key, seal, seal_chunk,
    seal_chunk_into, seal_into, sign, spake2_finish,
    spake2_key_schedule, spake2_share, spake2_shared_point, spake2_transcript, tree_leaf_hash, tree_root,
    verify_signature)
from securex.errors import DecryptionError

h = bytes.fromhex
FAST_N = 2**4   # scrypt cost where the cost is not the point
KEY = bytes(range(32))
OPAQUE = str(DecryptionError())   # the one message every decryption failure carries
VECTORS = Path(__file__).parent / "vectors" / "rfc9382-spake2-p256.txt"


# -- RFC 9382 SPAKE2-P256-SHA256-HKDF-HMAC ---------------------------------------------

def rfc9382_vectors() -> list[dict]:
    """The four vectors of RFC 9382 appendix B, as given in tests/vectors/ (long hex
    values wrap over lines there). Cross-checked: every value below is reproduced by
    our functions, and pA, pB, Ke and both confirmations match the RFC's text."""
    vectors = []
    for block in VECTORS.read_text().split("spake2: ")[1:]:
        head, body = block.split("\n", 1)
        values: dict[str, str] = {}
        current = None
        for line in body.splitlines():
            line = line.strip()
            match = re.fullmatch(r"(\w+(?: conf)?|Hash\(TT\)) = 0x([0-9a-f]+)", line)
            if match:
                current = match.group(1)
                values[current] = match.group(2)
            elif current and re.fullmatch(r"[0-9a-f]+", line):
                values[current] += line
            else:
                current = None
        identities = re.fullmatch(r"A='(.*)', B='(.*)'", head.strip())
        values["A"], values["B"] = identities.group(1), identities.group(2)
        vectors.append(values)
    return vectors


VECTOR_IDS = [f"A={v['A']!r},B={v['B']!r}" for v in rfc9382_vectors()]


@pytest.mark.parametrize("v", rfc9382_vectors(), ids=VECTOR_IDS)
def test_spake2_reproduces_every_value_of_rfc9382(v):
    w, x, y = int(v["w"], 16), int(v["x"], 16), int(v["y"], 16)
    a, b = v["A"].encode(), v["B"].encode()
    share_a, share_b = spake2_share(ROLE_A, w, x), spake2_share(ROLE_B, w, y)
    assert share_a == h(v["pA"]) and share_b == h(v["pB"])
    shared = spake2_shared_point(ROLE_A, w, x, share_b)
    assert shared == h(v["K"]) == spake2_shared_point(ROLE_B, w, y, share_a)
    transcript = spake2_transcript(a, b, share_a, share_b, shared, w)
    assert transcript == h(v["TT"])
    keys = spake2_key_schedule(transcript, b"")
    assert cu.sha256(transcript) == h(v["Hash(TT)"])
    assert (keys.ke, keys.ka, keys.kc_a, keys.kc_b) == (h(v["Ke"]), h(v["Ka"]), h(v["KcA"]), h(v["KcB"]))
    assert (keys.confirm_a, keys.confirm_b) == (h(v["A conf"]), h(v["B conf"]))
    # And through the function both sides really call:
    side_a = spake2_finish(ROLE_A, w, x, a, b, share_a, share_b, aad=b"")
    side_b = spake2_finish(ROLE_B, w, y, a, b, share_a, share_b, aad=b"")
    assert side_a.ke == side_b.ke == h(v["Ke"])
    assert side_a.my_confirmation == h(v["A conf"]) and side_b.peer_confirms(h(v["A conf"]))
    assert side_b.my_confirmation == h(v["B conf"]) and side_a.peer_confirms(h(v["B conf"]))


def test_the_m_and_n_points_are_the_rfcs_and_the_order_is_p256s():
    assert cu._point_from_compressed(h(
        "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f")) == cu._M
    assert (cu._G * P256_ORDER).is_point_at_infinity()
    assert cu._G * (P256_ORDER - 1) == -cu._G


GOOD_POINT = spake2_share(ROLE_A, 5, 7)


@pytest.mark.parametrize("encoded", [
    b"",
    GOOD_POINT[:-1],                                 # one byte short
    GOOD_POINT + b"\x00",                            # one byte long
    b"\x02" + GOOD_POINT[1:33],                      # compressed: not accepted
    b"\x05" + GOOD_POINT[1:],                        # unknown format byte
    b"\x04" + bytes(64),                             # the identity, as pycryptodome writes it
    b"\x04" + (1).to_bytes(32, "big") + (2).to_bytes(32, "big"),   # off the curve
    b"\x04" + GOOD_POINT[1:33] + bytes(32),          # right x, wrong y
    b"\x04" + b"\xff" * 64,                          # coordinates beyond the field
], ids=["empty", "short", "long", "compressed", "bad-format-byte", "identity", "off-curve", "wrong-y",
        "out-of-field"])
def test_invalid_peer_points_are_refused_opaquely(encoded):
    with pytest.raises(DecryptionError) as refused:
        decode_point(encoded)
    assert str(refused.value) == OPAQUE
    with pytest.raises(DecryptionError):
        spake2_finish(ROLE_B, 5, 9, b"a", b"b", encoded, spake2_share(ROLE_B, 5, 9))


def test_a_share_that_cancels_the_mask_is_refused():
    # pA = w*M makes pA - w*M the identity: K would be the identity too.
    w = 12345
    share = cu.encode_point(cu._M * w)
    with pytest.raises(DecryptionError):
        spake2_shared_point(ROLE_B, w, 777, share)


def test_different_passphrases_give_different_keys_and_failed_confirmations():
    w1, w2 = passphrase_to_w("tulip harbor", n=FAST_N), passphrase_to_w("tulip harbour", n=FAST_N)
    share_a, share_b = spake2_share(ROLE_A, w1, 11), spake2_share(ROLE_B, w2, 13)
    a = spake2_finish(ROLE_A, w1, 11, b"A", b"B", share_a, share_b)
    b = spake2_finish(ROLE_B, w2, 13, b"A", b"B", share_a, share_b)
    assert a.ke != b.ke
    assert not a.peer_confirms(b.my_confirmation) and not b.peer_confirms(a.my_confirmation)


def test_random_scalars_are_in_range_and_fresh():
    scalars = {cu.random_scalar() for _ in range(50)}
    assert len(scalars) == 50 and all(0 < s < P256_ORDER for s in scalars)
    # rejection sampling: an out-of-range draw is discarded, not reduced
    draws = iter([b"\xff" * 32, bytes(31) + b"\x07"])
    assert cu.random_scalar(lambda n: next(draws)) == 7


# -- scrypt, HKDF, GCM, Ed25519 -------------------------------------------------------------

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


# RFC 5869 appendix A.1-A.3 (HKDF-SHA256).
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


# McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14:
# 256-bit zero key, IV of zeros (our counter 0), no AAD.
@pytest.mark.parametrize("plaintext, ciphertext, tag", [
    ("", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    ("00" * 16, "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
], ids=["gcm-spec-case-13", "gcm-spec-case-14"])
def test_seal_matches_gcm_spec(plaintext, ciphertext, tag):
    sealed = h(ciphertext + tag)
    assert seal(bytes(32), 0, b"", h(plaintext)) == sealed
    assert open_sealed(bytes(32), 0, b"", sealed) == h(plaintext)
    written = bytearray(len(sealed))            # the same, written into buffers (file chunks)
    seal_into(bytes(32), 0, b"", memoryview(h(plaintext)), memoryview(written))
    assert bytes(written) == sealed
    out = bytearray(len(plaintext) // 2 + 8)    # larger than the plaintext: only the front is used
    assert bytes(open_into(bytes(32), 0, b"", memoryview(sealed), memoryview(out))) == h(plaintext)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, MAX_COUNTER), st.binary(max_size=64))
def test_sealing_into_a_buffer_is_sealing(plaintext, counter, aad):
    sealed = seal(KEY, counter, aad, plaintext)
    written = bytearray(len(plaintext) + TAG_BYTES)
    seal_into(KEY, counter, aad, plaintext, memoryview(written))
    assert bytes(written) == sealed
    out = bytearray(len(plaintext))
    assert bytes(open_into(KEY, counter, aad, memoryview(written), memoryview(out))) == plaintext


def test_a_cipher_made_ahead_seals_as_seal_does_and_serves_one_message_only():
    ahead = MessageCipher(bytes(32), 0, b"")
    assert ahead.seal(b"") == h("530f8afbc74536b9a963b4f1c4cb738b")   # the GCM spec's case 13
    with pytest.raises(RuntimeError):
        ahead.seal(b"a second message under the same nonce")
    sealed = seal(KEY, 7, b"aad", b"secret text")
    assert MessageCipher(KEY, 7, b"aad").open(sealed) == b"secret text"
    opener = MessageCipher(KEY, 7, b"aad")
    for bad in (sealed[:-1] + bytes([sealed[-1] ^ 1]), sealed[:TAG_BYTES - 1]):
        with pytest.raises(DecryptionError) as refused:
            MessageCipher(KEY, 7, b"aad").open(bad)
        assert str(refused.value) == OPAQUE
    with pytest.raises(DecryptionError):
        opener.open(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(RuntimeError):       # spent by the failed attempt too
        opener.open(sealed)


def test_sealing_into_a_buffer_of_the_wrong_size_is_refused():
    for size in (0, 10 + TAG_BYTES - 1, 10 + TAG_BYTES + 1):
        with pytest.raises(ValueError):
            seal_into(KEY, 1, b"", b"x" * 10, memoryview(bytearray(size)))


def test_opening_into_a_buffer_refuses_tampering_and_a_short_buffer_with_the_one_error():
    sealed = seal(KEY, 7, b"aad", b"secret text")
    flipped = bytearray(sealed)
    flipped[0] ^= 1
    for key, counter, aad, data, room in ((KEY, 7, b"aad", bytes(flipped), 64), (KEY, 8, b"aad", sealed, 64),
                                          (KEY, 7, b"aax", sealed, 64), (KEY, 7, b"aad", sealed[:-1], 64),
                                          (KEY, 7, b"aad", sealed, len(b"secret text") - 1)):
        with pytest.raises(DecryptionError) as refused:
            open_into(key, counter, aad, memoryview(data), memoryview(bytearray(room)))
        assert str(refused.value) == OPAQUE


# RFC 8032 section 7.1, TEST 1 and TEST 2 (Ed25519).
@pytest.mark.parametrize("secret, public, message, signature", [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
], ids=["rfc8032-test-1", "rfc8032-test-2"])
def test_ed25519_matches_rfc8032(secret, public, message, signature):
    assert identity_public_key(h(secret)) == h(public)
    assert sign(h(secret), h(message)) == h(signature)
    assert verify_signature(h(public), h(message), h(signature))


def test_a_signature_over_another_message_or_by_another_key_is_refused():
    seed, other = bytes(range(32)), bytes(range(1, 33))
    signature = sign(seed, b"proof")
    assert not verify_signature(identity_public_key(seed), b"proof!", signature)
    assert not verify_signature(identity_public_key(other), b"proof", signature)
    assert not verify_signature(identity_public_key(seed), b"proof", signature[:-1])
    assert not verify_signature(b"\x00" * 31, b"proof", signature)


# -- the key schedule -----------------------------------------------------------------------

def test_passphrase_cost_meets_the_design_floor():
    assert SCRYPT_N >= 2**15 and SCRYPT_R == 8 and SCRYPT_P == 1
    assert inspect.signature(passphrase_to_w.__wrapped__).parameters["n"].default == SCRYPT_N


def test_w_is_scrypt_of_the_nfkc_passphrase_with_64_extra_bits_reduced_mod_the_order():
    expected = int.from_bytes(scrypt_key("tulip", cu.PAKE_SALT, n=FAST_N, length=40), "big") % P256_ORDER
    assert passphrase_to_w("tulip", n=FAST_N) == expected


def test_composed_and_decomposed_accents_and_fullwidth_digits_give_the_same_w():
    assert passphrase_to_w("caf\u00e9 42", n=FAST_N) == passphrase_to_w("cafe\u0301 \uff14\uff12", n=FAST_N)


def test_channel_keys_follow_the_documented_labels_and_differ_per_direction():
    ke, nonce_a, nonce_b = bytes(16), b"a" * 16, b"b" * 16
    keys = channel_keys(ke, nonce_a, nonce_b)
    assert keys.a_to_b == hkdf_sha256(ke, 32, info=b"securex/v2 channel A->B", salt=nonce_a + nonce_b)
    assert keys.b_to_a == hkdf_sha256(ke, 32, info=b"securex/v2 channel B->A", salt=nonce_a + nonce_b)
    assert keys.a_to_b != keys.b_to_a
    assert keys.for_role(ROLE_A) == (keys.a_to_b, keys.b_to_a)
    assert keys.for_role(ROLE_B) == (keys.b_to_a, keys.a_to_b)
    assert channel_keys(ke, nonce_a, b"c" * 16).a_to_b != keys.a_to_b   # fresh nonces, fresh keys


def test_keys_are_never_in_a_repr():
    keys = channel_keys(bytes(16), b"a" * 16, b"b" * 16)
    assert keys.a_to_b.hex() not in repr(keys) and "a_to_b" not in repr(keys)


def test_safety_code_is_four_groups_of_four_base32_characters_of_the_key_hash():
    code = safety_code(bytes(32))
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4}){3}", code)
    assert safety_code(bytes(31) + b"\x01") != code


# -- sealing and its tamper cases -----------------------------------------------------------------

def test_nonce_is_four_zero_bytes_then_the_big_endian_counter():
    assert nonce_for(0x0102) == bytes(4) + (0x0102).to_bytes(8, "big")
    for bad in (-1, MAX_COUNTER + 1):
        with pytest.raises(ValueError):
            nonce_for(bad)


@pytest.mark.parametrize("plaintext", [b"", b"hello", bytes(range(256)) * 4], ids=["empty", "ascii", "binary"])
def test_round_trip(plaintext):
    assert open_sealed(KEY, 7, b"aad", seal(KEY, 7, b"aad", plaintext)) == plaintext


SEALED = seal(KEY, 7, b"aad", b"attack at dawn")


@pytest.mark.parametrize("key, counter, aad, sealed", [
    (KEY, 7, b"aad", SEALED[:-1] + bytes([SEALED[-1] ^ 1])),     # flipped tag byte
    (KEY, 7, b"aad", bytes([SEALED[0] ^ 1]) + SEALED[1:]),       # flipped ciphertext byte
    (KEY, 7, b"aad", SEALED[:TAG_BYTES - 1]),                    # truncated below a tag
    (KEY, 7, b"aad", SEALED[1:]),                                # first byte cut
    (bytes(32), 7, b"aad", SEALED),                              # wrong key
    (KEY, 8, b"aad", SEALED),                                    # replayed under another counter
    (KEY, 7, b"aax", SEALED),                                    # wrong associated data
    (KEY, 7, b"", SEALED),                                       # missing associated data
    (KEY, MAX_COUNTER + 1, b"aad", SEALED),                      # counter out of range
], ids=["flipped-tag", "flipped-ciphertext", "truncated", "first-byte-cut", "wrong-key", "other-counter",
        "wrong-aad", "missing-aad", "counter-out-of-range"])
def test_every_tampering_is_one_opaque_decryption_error(key, counter, aad, sealed):
    with pytest.raises(DecryptionError) as refused:
        open_sealed(key, counter, aad, sealed)
    assert str(refused.value) == OPAQUE


# -- RFC 6962 Merkle tree hash (the file digest) -------------------------------------------

TREE_VECTORS = Path(__file__).parent / "vectors" / "rfc6962-merkle-tree-sha256.txt"


def _tree_vectors() -> tuple[list[bytes], list[bytes]]:
    leaves, roots = [], []
    for line in TREE_VECTORS.read_text().splitlines():
        if line.startswith(("leaf ", "root ")):
            kind, _, value = line.partition("=")
            (leaves if kind.startswith("leaf") else roots).append(h(value.strip()))
    return leaves, roots


def test_the_file_digest_reproduces_the_published_rfc6962_roots_for_every_size():
    leaves, roots = _tree_vectors()
    assert len(leaves) == 8 and len(roots) == 9
    for size, root in enumerate(roots):
        assert tree_root([tree_leaf_hash(leaf) for leaf in leaves[:size]]) == root


def _rfc6962_mth(leaves: list[bytes]) -> bytes:
    """The RFC's own recursive definition, written out as it reads."""
    import hashlib
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)       # the largest power of two below n
    return hashlib.sha256(b"\x01" + _rfc6962_mth(leaves[:k]) + _rfc6962_mth(leaves[k:])).digest()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=70))
def test_the_file_digest_is_the_rfc6962_tree_for_any_number_of_chunks(leaves):
    assert tree_root([tree_leaf_hash(leaf) for leaf in leaves]) == _rfc6962_mth(leaves)


def test_the_receivers_tree_keeps_a_handful_of_hashes_however_many_chunks_come():
    """A hostile member may offer 4 GB in 4 KiB chunks: a million leaves."""
    import tracemalloc

    tree, leaf = cu.TreeHash(), tree_leaf_hash(b"chunk")
    tracemalloc.start()
    try:
        for _ in range(100_000):
            tree.add_leaf_hash(leaf)
        # What crypto_utils itself still holds (other threads of this process may be busy):
        # a few dozen hashes, where keeping every leaf would be 100,000 of them (~6.5 MB).
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, cu.__file__)])
    finally:
        tracemalloc.stop()
    held = sum(stat.size for stat in snapshot.statistics("filename"))
    assert tree.leaves == 100_000 and held < 500_000


def test_a_file_digest_tells_a_leaf_from_a_node_and_chunks_from_their_order():
    a, b = b"a" * 32, b"b" * 32
    two = tree_root([tree_leaf_hash(a), tree_leaf_hash(b)])
    assert two != tree_leaf_hash(a + b) and two != tree_root([tree_leaf_hash(b), tree_leaf_hash(a)])
    # A chunk crafted to be the two leaf hashes is a leaf, not that node.
    assert tree_root([tree_leaf_hash(tree_leaf_hash(a) + tree_leaf_hash(b))]) != two


def test_file_chunks_are_bound_to_their_file_place_finality_and_nonce():
    sealed = seal_chunk(KEY, b"f" * 16, 3, False, b"chunk", seal_no=7)
    assert bytes(open_chunk_into(KEY, b"f" * 16, 3, False, sealed, 7, memoryview(bytearray(64)))) == b"chunk"
    for file_id, index, final, seal_no in ((b"g" * 16, 3, False, 7), (b"f" * 16, 4, False, 7),
                                           (b"f" * 16, 3, True, 7), (b"f" * 16, 3, False, 3)):
        with pytest.raises(DecryptionError):
            open_chunk_into(KEY, file_id, index, final, sealed, seal_no, memoryview(bytearray(64)))
    written = bytearray(len(sealed))
    seal_chunk_into(KEY, b"f" * 16, 3, False, b"chunk", 7, memoryview(written))
    assert bytes(written) == sealed


def test_a_chunk_sealed_again_never_reuses_a_nonce_even_if_the_file_changed(tmp_path):
    """After a reconnect a chunk may be read from disk and sealed again; if the file
    changed, the same (key, nonce) over different bytes would leak their XOR and the
    GCM authentication key. The worker gives every sealing its own number."""
    from securex.session.file_worker import FileWorker
    from securex.session.files import HashSource, ReadChunk
    from securex.session.peer_wire import parse_bulk, split_body

    source = tmp_path / "f.bin"
    source.write_bytes(b"A" * 100)
    worker = FileWorker(lambda: None, threaded=False)
    file_id = b"f" * 16
    worker.submit(HashSource(file_id, source, 4096, 10**9))
    worker.submit(ReadChunk(file_id, 0, True, 4096, KEY))
    was = source.stat()
    source.write_bytes(b"B" * 100)                 # changed behind the sender's back (and its time put back)
    os.utime(source, ns=(was.st_atime_ns, was.st_mtime_ns))
    worker.submit(ReadChunk(file_id, 0, True, 4096, KEY))
    first, second = (parse_bulk(split_body(r.body)[1]) for r in worker.take_results()[1:])
    assert first.index == second.index == 0 and first.seal_no != second.seal_no
    worker.stop()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 100), st.binary(max_size=64))
def test_open_never_raises_anything_but_the_opaque_error(garbage, counter, aad):
    with pytest.raises(DecryptionError):
        open_sealed(KEY, counter, aad, garbage)


# -- passphrases --------------------------------------------------------------------------------------

def test_generated_passphrase_has_at_least_80_bits_and_is_fresh():
    assert 16 * PASSPHRASE_WORDS >= 80
    phrases = {generate_passphrase() for _ in range(20)}
    assert len(phrases) == 20
    assert all(re.fullmatch(r"[a-z]{5}(-[a-z]{5}){5}", p) for p in phrases)


def test_passphrase_is_deterministic_with_injected_bytes():
    assert generate_passphrase(lambda n: bytes(n)) == "babab-babab-babab-babab-babab-babab"


def test_the_crypto_module_uses_only_explicit_nonces():
    source = Path(cu.__file__).read_text()
    calls = re.findall(r"AES\.new\(([^)]*)\)", source)
    assert calls and all("nonce=" in call for call in calls)


def test_a_point_written_with_x_plus_p_is_refused():
    """Review finding: (x + p, y) decoded to the same point as (x, y)."""
    b = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
    x = 5                                       # the smallest x on P-256
    y = pow((x**3 - 3 * x + b) % cu.P256_PRIME, (cu.P256_PRIME + 1) // 4, cu.P256_PRIME)
    decode_point(b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big"))
    with pytest.raises(DecryptionError):
        decode_point(b"\x04" + (x + cu.P256_PRIME).to_bytes(32, "big") + y.to_bytes(32, "big"))
