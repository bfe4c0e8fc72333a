"""Signing keys for the update repository: ed25519, one PEM file per key, mode 0600.

    <keys-dir>/<role>/<keyid>.pem      role: root, targets, snapshot, timestamp

The keys directory is refused inside a git work tree or inside the published repository,
so a key never ends up in a commit or on the web server. Keep root (and targets) keys
offline; only the timestamp key needs to be where the daily re-signing runs.
"""

import os

from kapos.errors import UpdateError

ROLES = ("root", "targets", "snapshot", "timestamp")


def check_keys_dir(keys_dir, repo_dir=None):
    here = os.path.abspath(keys_dir)
    if repo_dir is not None:
        repo = os.path.abspath(repo_dir)
        if here == repo or here.startswith(repo + os.sep):
            raise UpdateError("the keys directory %s is inside the published repository %s" % (keys_dir, repo_dir))
    probe = here
    while True:
        if os.path.exists(os.path.join(probe, ".git")):
            raise UpdateError("the keys directory %s is inside the git work tree %s: keep keys out of "
                              "every repository (e.g. ~/.kapos-release-keys or an offline USB stick)"
                              % (keys_dir, probe))
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent


def generate(keys_dir, role):
    """A new key for `role`; returns its signer."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if role not in ROLES:
        raise UpdateError("unknown role %s (one of %s)" % (role, ", ".join(ROLES)))
    private = Ed25519PrivateKey.generate()
    signer = _signer(private)
    folder = os.path.join(keys_dir, role)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, signer.public_key.keyid + ".pem")
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return signer


def _signer(private):
    from securesystemslib.signer import CryptoSigner, SSlibKey

    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def load(keys_dir, role):
    """Signers for every key of `role` in the keys directory, by keyid."""
    from cryptography.hazmat.primitives import serialization

    folder = os.path.join(keys_dir, role)
    signers = {}
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return signers
    for name in names:
        if not name.endswith(".pem"):
            continue
        path = os.path.join(folder, name)
        if os.stat(path).st_mode & 0o077:
            raise UpdateError("key file %s is readable by others: chmod 600 it" % path)
        try:
            with open(path, "rb") as f:
                private = serialization.load_pem_private_key(f.read(), password=None)
        except (ValueError, TypeError):
            raise UpdateError("key file %s is not an ed25519 PEM key" % path)
        signer = _signer(private)
        signers[signer.public_key.keyid] = signer
    return signers


def retire(keys_dir, role, keyid):
    """Move a rotated-out key aside (kept: it may be needed to sign a recovery root)."""
    folder = os.path.join(keys_dir, role)
    retired = os.path.join(keys_dir, "retired", role)
    os.makedirs(retired, mode=0o700, exist_ok=True)
    os.replace(os.path.join(folder, keyid + ".pem"), os.path.join(retired, keyid + ".pem"))
