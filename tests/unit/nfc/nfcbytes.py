"""Bytes from the hex the NFC tests write (imported by name, not from a conftest.py,
which another directory's conftest.py would shadow in a run of several directories)."""


def uid(text):
    return bytes.fromhex(text.replace(" ", ""))
