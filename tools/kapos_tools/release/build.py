"""The installable artefact: a reproducible tarball of the firmware package plus RELEASE.json.

    RELEASE.json     {"version", "files": {path: sha256}}   checked again on the terminal
    firmware/kapos/  the firmware package from the checkout, without caches (the checkout's
                     own layout, so boards/ is found where a checkout has it)
    boards/*.toml    the board files

The same checkout and version give the same bytes (sorted entries, zero times and owners).
Python dependencies come from the terminal's base install (`kapos flash`): a release that
needs new ones is flashed, not updated (docs/updates.md).
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

from kapos.errors import UpdateError
from kapos.update.layout import RELEASE_FILE, parse_version

SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp")


def package_files(source):
    """(archive path, file path) of every file of firmware/kapos in the checkout `source`."""
    package = os.path.join(source, "firmware", "kapos")
    if not os.path.isfile(os.path.join(package, "__init__.py")):
        raise UpdateError("%s is not a kapos checkout (no firmware/kapos/__init__.py)" % source)
    found = []
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(SKIP_SUFFIXES):
                continue
            path = os.path.join(folder, name)
            found.append(("firmware/kapos/" + os.path.relpath(path, package).replace(os.sep, "/"), path))
    boards = os.path.join(source, "boards")  # board files travel with the code that reads them
    for name in sorted(os.listdir(boards)) if os.path.isdir(boards) else []:
        if name.endswith(".toml"):
            found.append(("boards/" + name, os.path.join(boards, name)))
    return sorted(found)


def _add(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build_tarball(source, version):
    parse_version(version)
    files = {}
    contents = []
    for name, path in package_files(source):
        with open(path, "rb") as f:
            data = f.read()
        files[name] = hashlib.sha256(data).hexdigest()
        contents.append((name, data))
    manifest = json.dumps({"version": version, "files": files}, indent=1, sort_keys=True).encode()
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, RELEASE_FILE, manifest)
            for name, data in contents:
                _add(tar, name, data)
    return raw.getvalue()
