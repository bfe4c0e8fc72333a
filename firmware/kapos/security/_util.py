"""Small byte helpers shared by the security modules (L1, MicroPython subset)."""


def xor_bytes(a, b):
    """XOR two equal-length byte strings into a new bytearray."""
    if len(a) != len(b):
        raise ValueError("xor_bytes needs equal lengths")
    out = bytearray(len(a))
    for i in range(len(a)):
        out[i] = a[i] ^ b[i]
    return out


def constant_time_equal(a, b):
    """True when a == b, taking the same time wherever they differ.

    Lengths are not secret (a MAC or PVV has a fixed, public length), so a
    length mismatch returns False at once.
    """
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
