"""AES (FIPS-197) in pure Python: the block primitive for runtimes with no AES library.

`kapos.security.aes` uses this only where neither pycryptodome (CPython) nor `cryptolib`
(most MicroPython ports) exists, e.g. MicroPython's WebAssembly build. It is slow (a few
hundred blocks a second under MicroPython) and makes no constant-time promise: fine for
tests and a DIY terminal's handful of blocks per transaction, nothing more.

The tables are computed at import from the field arithmetic rather than written out, so
there is nothing to mistype; tests check it against the FIPS-197 appendix vectors.
"""


def _xtime(a):
    a <<= 1
    return (a ^ 0x11B) if a & 0x100 else a


def _tables(decrypt=False):
    # exp/log over the generator 3 give inverses; the affine map then gives the S-box.
    exp = bytearray(256)
    log = bytearray(256)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x ^= _xtime(x)  # x * 3
    sbox = bytearray(256)
    inv = bytearray(256)
    for a in range(256):
        b = exp[(255 - log[a]) % 255] if a else 0
        s = b
        for _ in range(4):
            b = ((b << 1) | (b >> 7)) & 0xFF
            s ^= b
        s ^= 0x63
        sbox[a] = s
        inv[s] = a

    def mul_table(factor):
        out = bytearray(256)
        for a in range(1, 256):
            out[a] = exp[(log[a] + log[factor]) % 255]
        return bytes(out)

    if decrypt:
        return bytes(inv), mul_table(9), mul_table(11), mul_table(13), mul_table(14)
    return bytes(sbox), mul_table(2), mul_table(3)


# the decryption tables are built on first use: a terminal's sale only encrypts, and a
# small board's heap is better off without 1.3 KB it does not need
_SBOX, _M2, _M3 = _tables()
_DECRYPT = []
_ROUNDS = {16: 10, 24: 12, 32: 14}
# state index 4*column + row; ShiftRows moves row r left by r columns
_SHIFT = tuple(4 * ((c + r) % 4) + r for c in range(4) for r in range(4))
_INV_SHIFT = tuple(4 * ((c - r) % 4) + r for c in range(4) for r in range(4))


def _expand(key):
    nk = len(key) // 4
    rounds = _ROUNDS[len(key)]
    words = [list(key[4 * i:4 * i + 4]) for i in range(nk)]
    rcon = 1
    for i in range(nk, 4 * (rounds + 1)):
        t = list(words[i - 1])
        if i % nk == 0:
            t = [_SBOX[t[1]] ^ rcon, _SBOX[t[2]], _SBOX[t[3]], _SBOX[t[0]]]
            rcon = _xtime(rcon)
        elif nk > 6 and i % nk == 4:
            t = [_SBOX[b] for b in t]
        prev = words[i - nk]
        words.append([prev[j] ^ t[j] for j in range(4)])
    keys = []
    for r in range(rounds + 1):
        keys.append(words[4 * r] + words[4 * r + 1] + words[4 * r + 2] + words[4 * r + 3])
    return keys


def encrypt_block(key, block):
    """One 16-byte block under a 16/24/32-byte key (lengths checked by kapos.security.aes)."""
    keys = _expand(key)
    s = [block[i] ^ keys[0][i] for i in range(16)]
    last = len(keys) - 1
    for r in range(1, last + 1):
        t = [_SBOX[s[_SHIFT[i]]] for i in range(16)]
        if r != last:
            for c in range(0, 16, 4):
                a0, a1, a2, a3 = t[c], t[c + 1], t[c + 2], t[c + 3]
                t[c] = _M2[a0] ^ _M3[a1] ^ a2 ^ a3
                t[c + 1] = a0 ^ _M2[a1] ^ _M3[a2] ^ a3
                t[c + 2] = a0 ^ a1 ^ _M2[a2] ^ _M3[a3]
                t[c + 3] = _M3[a0] ^ a1 ^ a2 ^ _M2[a3]
        k = keys[r]
        s = [t[i] ^ k[i] for i in range(16)]
    return bytes(s)


def decrypt_block(key, block):
    """The inverse of encrypt_block."""
    if not _DECRYPT:
        _DECRYPT.extend(_tables(True))
    _INV_SBOX, _M9, _M11, _M13, _M14 = _DECRYPT
    keys = _expand(key)
    last = len(keys) - 1
    s = [block[i] ^ keys[last][i] for i in range(16)]
    for r in range(last - 1, -1, -1):
        t = [_INV_SBOX[s[_INV_SHIFT[i]]] for i in range(16)]
        k = keys[r]
        t = [t[i] ^ k[i] for i in range(16)]
        if r:
            for c in range(0, 16, 4):
                a0, a1, a2, a3 = t[c], t[c + 1], t[c + 2], t[c + 3]
                t[c] = _M14[a0] ^ _M11[a1] ^ _M13[a2] ^ _M9[a3]
                t[c + 1] = _M9[a0] ^ _M14[a1] ^ _M11[a2] ^ _M13[a3]
                t[c + 2] = _M13[a0] ^ _M9[a1] ^ _M14[a2] ^ _M11[a3]
                t[c + 3] = _M11[a0] ^ _M13[a1] ^ _M9[a2] ^ _M14[a3]
        s = t
    return bytes(s)
