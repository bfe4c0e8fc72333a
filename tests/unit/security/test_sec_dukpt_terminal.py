"""AES DUKPT terminal state: counter rule, persistence, exhaustion (ANSI X9.24-3-2017).

The terminal is checked against the host-side derivation (itself checked against the
published X9.24-3-2017 supplement vectors in test_sec_dukpt_vectors.py). The KSN
sequences 0x1FFFE -> 0x20000 -> 0x20001 and 0xFFFE2000 -> 0xFFFE4000 -> 0xFFFE8000 ->
0xFFFF0000 -> exhausted are the supplement's, as transcribed in openemv/dukpt
test/dukpt_aes128_test.c (commit a0a09627081600c10a56b904b704049e30f4cf99).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapos.errors import SecurityError
from kapos.security import dukpt

H = bytes.fromhex
IK_ID = H("1234567890123456")
BDK = H("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IK = dukpt.derive_initial_key(BDK, IK_ID)


def popcount(n):
    return bin(n).count("1")


def next_valid(counter):
    """Brute force: the smallest counter above `counter` with at most 16 one-bits."""
    c = counter + 1
    while popcount(c) > 16:
        c += 1
    return c if c <= 0xFFFFFFFF else 0


def state_at(ik, counter):
    """Build the documented state record for `counter` from the IK (test-only).

    Register r (lowest set bit) holds the counter's own key; a register i > r whose
    counter bit is 0 holds the key of (counter's bits above i) | 2**i.
    """
    r = (counter & -counter).bit_length() - 1
    bitmap = 0
    keys = b""
    for i in range(32):
        if i == r or (i > r and not counter >> i & 1):
            bitmap |= 1 << i
            owner = (counter >> (i + 1) << (i + 1)) | (1 << i)
            keys += dukpt.derive_transaction_key(ik, dukpt.make_ksn(IK_ID, owner))
    key_type = dukpt.key_type_of(ik)
    return b"KDK" + bytes([1, key_type]) + IK_ID + counter.to_bytes(4, "big") + bitmap.to_bytes(4, "big") + keys


def host_pin_key(counter):
    return dukpt.host_derive_working_key(BDK, dukpt.make_ksn(IK_ID, counter), dukpt.PIN_ENCRYPTION)


def test_counter_rule_is_sixteen_bits_not_ten():
    """AES DUKPT: 32-bit counter, at most 16 one-bits (TDES DUKPT's 21-bit/10-bit rule does not apply)."""
    assert dukpt.NUM_REG == 32 and dukpt.MAX_WORK == 16
    assert dukpt.counter_is_valid(0x0000FFFF)  # 16 bits
    assert dukpt.counter_is_valid(0xFFFF0000)
    assert not dukpt.counter_is_valid(0x0001FFFF)  # 17 bits
    assert not dukpt.counter_is_valid(0)
    assert not dukpt.counter_is_valid(1 << 32)


def test_first_3000_transactions_match_host():
    terminal = dukpt.DukptTerminal.load_initial_key(IK, IK_ID)
    expected = 1
    for _ in range(3000):
        state, ksn, keys = terminal.next_transaction()
        assert ksn == dukpt.make_ksn(IK_ID, expected)
        assert keys.pin_key() == host_pin_key(expected)
        expected = next_valid(expected)
        assert terminal.counter == expected


def test_rollover_sequence_skips_17_bit_counter():
    """Supplement KSN sequence 0x1FFFE -> 0x20000 -> 0x20001 (openemv/dukpt test/dukpt_aes128_test.c)."""
    terminal = dukpt.DukptTerminal.from_state(state_at(IK, 0x0001FFFE))
    seen = []
    for _ in range(3):
        _, ksn, keys = terminal.next_transaction()
        counter = int.from_bytes(ksn[8:], "big")
        seen.append(counter)
        assert keys.pin_key() == host_pin_key(counter)
    assert seen == [0x0001FFFE, 0x00020000, 0x00020001]


def test_last_four_then_exhausted():
    """Supplement's last four counters, then the terminal refuses (openemv/dukpt test/dukpt_aes128_test.c)."""
    terminal = dukpt.DukptTerminal.from_state(state_at(IK, 0xFFFE2000))
    seen = []
    for _ in range(4):
        state, ksn, keys = terminal.next_transaction()
        counter = int.from_bytes(ksn[8:], "big")
        seen.append(counter)
        assert keys.pin_key() == host_pin_key(counter)
    assert seen == [0xFFFE2000, 0xFFFE4000, 0xFFFE8000, 0xFFFF0000]
    assert terminal.exhausted
    with pytest.raises(SecurityError, match="exhausted"):
        terminal.next_transaction()
    reloaded = dukpt.DukptTerminal.from_state(state)
    assert reloaded.exhausted
    with pytest.raises(SecurityError):
        reloaded.next_transaction()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 0xFFFFFFFF).filter(lambda c: popcount(c) <= 16))
def test_any_valid_state_advances_like_host(counter):
    """From any valid counter: visit exactly the valid counters, in order, with the host's keys."""
    terminal = dukpt.DukptTerminal.from_state(state_at(IK, counter))
    c = counter
    for _ in range(3):
        if c == 0:
            break
        state, ksn, keys = terminal.next_transaction()
        assert int.from_bytes(ksn[8:], "big") == c
        assert keys.mac_request_key() == dukpt.host_derive_working_key(BDK, ksn, dukpt.MAC_GENERATION)
        c = next_valid(c)
        assert dukpt.DukptTerminal.from_state(state).counter == c


def test_advance_then_use_flow_never_reuses_a_counter():
    """The caller saves the returned state before using keys; a restart resumes after it."""
    storage = {}
    terminal = dukpt.DukptTerminal.load_initial_key(IK, IK_ID)
    storage["dukpt"] = terminal.export_state()
    used = []
    for _ in range(5):
        terminal = dukpt.DukptTerminal.from_state(storage["dukpt"])  # every boot / transaction
        state, ksn, keys = terminal.next_transaction()
        storage["dukpt"] = state  # persist first ...
        used.append(ksn)  # ... then use the keys
        keys.wipe()
    assert len(set(used)) == 5
    # a power cut after persisting: the next boot continues after the last used KSN
    _, ksn, _ = dukpt.DukptTerminal.from_state(storage["dukpt"]).next_transaction()
    assert ksn not in used


def test_state_returned_equals_export_and_round_trips():
    terminal = dukpt.DukptTerminal.load_initial_key(IK, IK_ID)
    state, _, _ = terminal.next_transaction()
    assert state == terminal.export_state()
    twin = dukpt.DukptTerminal.from_state(state)
    a = terminal.next_transaction()
    b = twin.next_transaction()
    assert a[0] == b[0] and a[1] == b[1] and a[2].pin_key() == b[2].pin_key()


def test_aes256_terminal_round_trip():
    ik256 = dukpt.derive_initial_key(BDK + BDK, IK_ID)
    terminal = dukpt.DukptTerminal.load_initial_key(ik256, IK_ID)
    state, ksn, keys = terminal.next_transaction()
    assert terminal.key_type == dukpt.AES256
    assert dukpt.DukptTerminal.from_state(state).key_type == dukpt.AES256
    assert keys.pin_key(dukpt.AES256) == dukpt.host_derive_working_key(
        BDK + BDK, ksn, dukpt.PIN_ENCRYPTION, dukpt.AES256
    )


def test_corrupt_states_are_rejected():
    good = state_at(IK, 0x00000105)
    assert dukpt.DukptTerminal.from_state(good).counter == 0x105
    bad = [
        b"",
        b"XYZ" + good[3:],
        good[:3] + b"\x02" + good[4:],  # version
        good[:4] + b"\x07" + good[5:],  # key type
        good[:-1],  # truncated
        good + b"\x00",
        good[:13] + (0x0001FFFF).to_bytes(4, "big") + good[17:],  # 17-bit counter
        good[:13] + (0x00000106).to_bytes(4, "big") + good[17:],  # registers don't fit
        good[:17] + (0xFFFFFFFF).to_bytes(4, "big") + good[21:],  # bitmap
    ]
    for blob in bad:
        with pytest.raises(SecurityError):
            dukpt.DukptTerminal.from_state(blob)


def test_working_key_rules():
    ksn = dukpt.make_ksn(IK_ID, 1)
    txn = dukpt.derive_transaction_key(IK, ksn)
    with pytest.raises(SecurityError):  # AES-256 working key from an AES-128 IK
        dukpt.derive_working_key(txn, ksn, dukpt.PIN_ENCRYPTION, dukpt.AES256)
    with pytest.raises(SecurityError):  # derivation usages are not working keys
        dukpt.derive_working_key(txn, ksn, dukpt.KEY_DERIVATION)
    with pytest.raises(SecurityError):
        dukpt.host_derive_working_key(BDK, dukpt.make_ksn(IK_ID, 0), dukpt.PIN_ENCRYPTION)
    with pytest.raises(SecurityError):
        dukpt.host_derive_working_key(BDK, ksn[:10], dukpt.PIN_ENCRYPTION)
    with pytest.raises(SecurityError):
        dukpt.derive_initial_key(BDK[:8], IK_ID)


def test_no_key_material_in_repr_or_errors():
    terminal = dukpt.DukptTerminal.load_initial_key(IK, IK_ID)
    state, _, keys = terminal.next_transaction()
    secrets = [IK.hex(), keys.pin_key().hex()]
    texts = [repr(terminal), repr(keys)]
    keys.wipe()
    with pytest.raises(SecurityError) as err:
        keys.pin_key()
    texts.append(str(err.value))
    with pytest.raises(SecurityError) as err:
        dukpt.DukptTerminal.from_state(state[:-1])
    texts.append(str(err.value))
    for text in texts:
        for secret in secrets:
            assert secret[:8] not in text.lower()


def test_wipe_erases_registers():
    terminal = dukpt.DukptTerminal.load_initial_key(IK, IK_ID)
    terminal.wipe()
    assert terminal.exhausted
    with pytest.raises(SecurityError):
        terminal.next_transaction()
    assert len(terminal.export_state()) == 21  # header only, no key bytes
