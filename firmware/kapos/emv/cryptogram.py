"""EMV Book 2 Annex A1 with double-length DES keys, over an injected single-DES block.

`des` is any object with encrypt(key8, block8) and decrypt(key8, block8): pycryptodome on
CPython (the reference host, the emulated cards), something else on other ports. The
terminal never needs these: only the issuer (host) and the card hold the keys.

    icc_master_key  A1.4.1 option A: Y = rightmost 16 digits of PAN || PSN
    session_key     A1.3.1 common session key, R = ATC || 00..00
    mac             A1.2.1 (ISO/IEC 9797-1 MAC algorithm 3, padding method 2), 8 bytes
    arqc            the MAC of the CDOL1 data selection (Book 2 8.1.1) under the session key
    arpc_method1    8.2.1: DES3(SK)[ARQC xor (ARC || 00..00)]
    arpc_method2    8.2.2: MAC(SK)[ARQC || CSU || proprietary data], leftmost 4 bytes
"""

from kapos.errors import SecurityError


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def _check_key(key):
    if len(key) != 16:
        raise SecurityError("EMV keys here are double-length DES keys (16 bytes)")


def tdes_encrypt(des, key, block):
    _check_key(key)
    return des.encrypt(key[:8], des.decrypt(key[8:], des.encrypt(key[:8], block)))


def _odd_parity(key):
    out = bytearray(key)
    for i in range(len(out)):
        b = out[i] & 0xFE
        ones = 0
        v = b
        while v:
            ones += v & 1
            v >>= 1
        out[i] = b | (0 if ones & 1 else 1)
    return bytes(out)


def _digits(text):
    if type(text) is not str or not text or not all("0" <= c <= "9" for c in text):
        raise SecurityError("PAN and PAN sequence number must be digits")
    return text


def icc_master_key(des, issuer_key, pan, psn="00"):
    y = (_digits(pan) + _digits(psn or "00"))[-16:]
    y = "0" * (16 - len(y)) + y
    block = bytes.fromhex(y)
    left = tdes_encrypt(des, issuer_key, block)
    right = tdes_encrypt(des, issuer_key, _xor(block, b"\xff" * 8))
    return _odd_parity(left + right)


def session_key(des, master_key, atc):
    """Common session key for the application cryptogram (ATC: 2 bytes)."""
    if len(atc) != 2:
        raise SecurityError("the ATC is 2 bytes")
    left = tdes_encrypt(des, master_key, bytes(atc) + b"\xf0" + bytes(5))
    right = tdes_encrypt(des, master_key, bytes(atc) + b"\x0f" + bytes(5))
    return _odd_parity(left + right)


def pad_method2(data):
    data = bytes(data) + b"\x80"
    return data + bytes((8 - len(data) % 8) % 8)


def mac(des, key, data):
    """ISO/IEC 9797-1 algorithm 3 (retail MAC), padding method 2, 8 bytes."""
    _check_key(key)
    data = pad_method2(data)
    h = bytes(8)
    for i in range(0, len(data), 8):
        h = des.encrypt(key[:8], _xor(h, data[i:i + 8]))
    return des.encrypt(key[:8], des.decrypt(key[8:], h))


def arqc(des, sk, data):
    return mac(des, sk, data)


def arpc_method1(des, sk, cryptogram, arc):
    if len(cryptogram) != 8 or len(arc) != 2:
        raise SecurityError("ARPC method 1 takes an 8-byte ARQC and a 2-byte response code")
    return tdes_encrypt(des, sk, _xor(cryptogram, bytes(arc) + bytes(6)))


def arpc_method2(des, sk, cryptogram, csu, proprietary=b""):
    if len(cryptogram) != 8 or len(csu) != 4 or len(proprietary) > 8:
        raise SecurityError("ARPC method 2 takes an 8-byte ARQC, a 4-byte CSU, 0-8 bytes more")
    return mac(des, sk, bytes(cryptogram) + bytes(csu) + bytes(proprietary))[:4]


def constant_time_equal(a, b):
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


# The data an ARQC covers in kapos (Book 2 8.1.1 minimum set, the CVR from the IAD last):
# the card computes it over its CDOL1 in this order, the issuer rebuilds it from field 55.
ARQC_TAGS = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37, 0x82, 0x9F36)
ARQC_LENGTHS = {0x9F02: 6, 0x9F03: 6, 0x9F1A: 2, 0x95: 5, 0x5F2A: 2, 0x9A: 3, 0x9C: 1,
                0x9F37: 4, 0x82: 2, 0x9F36: 2}


def cvr_of(iad):
    """The card verification results inside the issuer application data (9F10): Visa
    format (length byte, DKI, CVN, CVR with its length byte first) -> bytes 3..6."""
    if len(iad) < 7:
        raise SecurityError("issuer application data too short")
    return bytes(iad[3:7])


def arqc_input(values):
    """The bytes an ARQC covers, from {tag: value}; a missing or mis-sized tag raises."""
    out = b""
    for tag in ARQC_TAGS:
        v = values.get(tag)
        if v is None or len(v) != ARQC_LENGTHS[tag]:
            raise SecurityError("cryptogram data: tag %X missing or of the wrong length" % tag)
        out += bytes(v)
    iad = values.get(0x9F10)
    if iad is None:
        raise SecurityError("cryptogram data: tag 9F10 missing")
    return out + cvr_of(iad)
