"""The one AES primitive of kapos (L1): encrypt or decrypt a single 16-byte block.

This is the ONLY module of the portable core that imports a third-party or
runtime-specific library, and the only place that touches an AES
implementation:

- on CPython: pycryptodome (`Crypto.Cipher.AES`, ECB on one block);
- on MicroPython: the built-in `cryptolib.aes(key, 1)` (mode 1 = ECB); most
  ports accept 16- and 32-byte keys only, which is what DUKPT here uses;
- on a MicroPython port without cryptolib (the WebAssembly build): the pure-Python
  FIPS-197 block in `aes_soft.py`.

Everything else in `kapos.security` (CMAC, DUKPT, PIN blocks) is built on
`aes_encrypt_block` / `aes_decrypt_block`, because MicroPython's cryptolib only
offers ECB and CBC; keeping modes out of the backend keeps the two runtimes
byte-for-byte identical.

Errors never carry key material: they say what is wrong (a length), never a value.
"""

from kapos.errors import SecurityError

BLOCK_SIZE = 16
KEY_SIZES = (16, 24, 32)

try:  # CPython
    from Crypto.Cipher import AES as _AES  # type: ignore

    def _encrypt(key, block):
        return _AES.new(key, _AES.MODE_ECB).encrypt(block)

    def _decrypt(key, block):
        return _AES.new(key, _AES.MODE_ECB).decrypt(block)

except ImportError:  # MicroPython
    try:
        import cryptolib  # type: ignore
    except ImportError:  # a port built without cryptolib (the WebAssembly one): pure Python
        cryptolib = None
        from kapos.security.aes_soft import encrypt_block as _encrypt  # noqa: F401
        from kapos.security.aes_soft import decrypt_block as _decrypt  # noqa: F401

    _ECB = 1

    if cryptolib is not None:
        def _encrypt(key, block):
            # A cryptolib.aes object may only be used in one direction: make one per call.
            return cryptolib.aes(key, _ECB).encrypt(block)

        def _decrypt(key, block):
            return cryptolib.aes(key, _ECB).decrypt(block)


def _check(key, block):
    if len(key) not in KEY_SIZES:
        raise SecurityError("AES key must be 16, 24 or 32 bytes, got %d" % len(key))
    if len(block) != BLOCK_SIZE:
        raise SecurityError("AES block must be 16 bytes, got %d" % len(block))
    return bytes(key), bytes(block)


def aes_encrypt_block(key, block):
    """Encrypt one 16-byte block under a 16/24/32-byte key; returns 16 bytes."""
    key, block = _check(key, block)
    return bytes(_encrypt(key, block))


def aes_decrypt_block(key, block):
    """Decrypt one 16-byte block under a 16/24/32-byte key; returns 16 bytes."""
    key, block = _check(key, block)
    return bytes(_decrypt(key, block))
