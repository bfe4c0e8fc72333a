"""CRC_A of ISO/IEC 14443-3 (Annex B): CRC-16/CCITT, reflected, initial value 0x6363.

The two CRC bytes are sent least significant byte first, after the data.
"""

CRC_A_INIT = 0x6363


def crc_a(data, crc=CRC_A_INIT):
    """Return the CRC_A of `data` (bytes-like) as an int (0..0xFFFF)."""
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return crc


def crc_a_bytes(data):
    """The two CRC_A bytes of `data`, in transmission order (LSB first)."""
    crc = crc_a(data)
    return bytes((crc & 0xFF, crc >> 8))


def append_crc_a(data):
    """`data` followed by its CRC_A."""
    return bytes(data) + crc_a_bytes(data)


def check_crc_a(frame):
    """True when the last two bytes of `frame` are the CRC_A of the bytes before them.

    Over a whole valid frame the CRC_A register ends at 0 (the residue)."""
    return len(frame) >= 2 and crc_a(frame) == 0
