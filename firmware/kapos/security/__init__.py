"""Portable payment cryptography (L1, MicroPython subset, no I/O).

- aes:       the one AES block primitive (pycryptodome or MicroPython cryptolib)
- cmac:      AES-CMAC (RFC 4493) and constant-time verification
- dukpt:     AES DUKPT (ANSI X9.24-3-2017): host derivation, terminal key state
- pinblock:  ISO 9564-1 PIN blocks, format 4 (AES) and format 0 (clear block)
- pinverify: host-side PIN verification values (truncated AES-CMAC)

Submodules are imported explicitly (`from kapos.security import dukpt`) so a
small board only loads what it uses.
"""
