"""ISO 14443 Type A at the bit level, shared by the MFRC522 emulator and its virtual cards:
CRC_A, bit lists, air time at 106 kbit/s."""

FC_MHZ = 13.56
BIT_US = 128 / FC_MHZ  # one bit at 106 kbit/s


def crc_a(data):
    """CRC_A (ISO 14443-3), bit by bit: reflected polynomial 0x8408, preset 0x6363."""
    crc = 0x6363
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def with_crc(data):
    c = crc_a(data)
    return bytes(data) + bytes((c & 0xFF, c >> 8))


def crc_ok(frame):
    return len(frame) >= 3 and with_crc(frame[:-2]) == bytes(frame)


def bits_of(data, nbits):
    return [(data[i >> 3] >> (i & 7)) & 1 for i in range(nbits)]


def bytes_of(bits):
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def air_us(nbits):
    """Air time of a frame: start bit, data, one parity bit per full byte, end."""
    return (nbits + nbits // 8 + 2) * BIT_US
