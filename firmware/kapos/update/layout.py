"""The install root of a terminal that updates itself.

    <root>/config.json           repository URL, channel (written by `kapos update init`)
    <root>/metadata/root.json    the trusted TUF root (then whatever TUF has verified since)
    <root>/downloads/            partial and finished downloads (resumed after a power cut)
    <root>/releases/<version>/   one unpacked, verified release each (RELEASE.json, firmware/kapos/, boards/)
    <root>/current -> releases/<version>    what the service starts (PYTHONPATH=current/firmware)
    <root>/state.json            trial boot, previous version, last result, refused versions

Every change is a new file renamed over the old one (fsync before and after), so a power
cut leaves either the old or the new content, never half of one. `current` is a symlink
replaced by rename: the service starts the old release or the new one, nothing between.
"""

import hashlib
import json
import os
import re
import shutil
import time

from kapos.errors import UpdateError
from kapos.io.files import atomic_write, fsync_directory

RELEASE_FILE = "RELEASE.json"
VERSION_RE = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$")


def parse_version(text):
    if not isinstance(text, str) or not VERSION_RE.match(text):
        raise UpdateError("not a release version: %r (use digits and dots, e.g. 2.1.0)" % (text,))
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def verify_release_dir(path):
    """The version of the complete release in `path`; UpdateError naming the first file
    that is missing, extra or not what its RELEASE.json says."""
    try:
        with open(os.path.join(path, RELEASE_FILE)) as f:
            manifest = json.load(f)
        version = manifest["version"]
        files = manifest["files"]
        parse_version(version)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UpdateError("%s has no valid %s (%s)" % (path, RELEASE_FILE, type(exc).__name__))
    for rel, digest in files.items():
        full = os.path.join(path, rel)
        if os.path.isabs(rel) or ".." in rel.split("/") or not os.path.isfile(full):
            raise UpdateError("release %s: file %s is missing" % (version, rel))
        if sha256_file(full) != digest:
            raise UpdateError("release %s: file %s does not match its hash" % (version, rel))
    return version


class Layout:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.releases = os.path.join(self.root, "releases")
        self.downloads = os.path.join(self.root, "downloads")
        self.metadata = os.path.join(self.root, "metadata")
        self.current_link = os.path.join(self.root, "current")
        self.state_path = os.path.join(self.root, "state.json")
        self.config_path = os.path.join(self.root, "config.json")

    def ensure(self):
        for d in (self.root, self.releases, self.downloads, self.metadata):
            os.makedirs(d, exist_ok=True)

    # ------------------------------------------------------------ config and state

    def config(self):
        try:
            with open(self.config_path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise UpdateError("%s is not an update root: run `kapos update init` first" % self.root)
        except ValueError:
            raise UpdateError("%s is damaged: run `kapos update init` again" % self.config_path)

    def write_config(self, config):
        atomic_write(self.config_path, json.dumps(config, indent=1, sort_keys=True).encode(), 0o644)

    def state(self):
        try:
            with open(self.state_path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {}
        except ValueError:  # only ever replaced whole; a bad one is a bug or an attack
            raise UpdateError("%s is damaged" % self.state_path)
        state.setdefault("trial", None)
        state.setdefault("last", None)
        state.setdefault("previous", None)
        state.setdefault("refused", [])
        state.setdefault("pending", None)
        return state

    def write_state(self, state):
        atomic_write(self.state_path, json.dumps(state, indent=1, sort_keys=True).encode(), 0o644)

    def record(self, state, version, result, reason=""):
        state["last"] = {"version": version, "result": result, "reason": reason, "at": int(time.time())}

    # ------------------------------------------------------------ releases

    def release_dir(self, version):
        parse_version(version)
        return os.path.join(self.releases, version)

    def installed(self):
        """Versions with a release directory (complete ones: partial ones are `.tmp-*`)."""
        try:
            names = os.listdir(self.releases)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if VERSION_RE.match(n)), key=parse_version)

    def current(self):
        """The version `current` points at, or None (the flashed base install runs)."""
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        name = os.path.basename(target.rstrip("/"))
        return name if VERSION_RE.match(name) else None

    def switch(self, version):
        """Point `current` at releases/<version> (None: remove it) in one rename."""
        tmp = self.current_link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if version is None:
            if os.path.lexists(self.current_link):
                os.unlink(self.current_link)
        else:
            os.symlink(os.path.join("releases", version), tmp)
            os.replace(tmp, self.current_link)
        fsync_directory(self.root)

    def discard(self, name):
        """Remove releases/<name>: renamed out of the versions first (one atomic step), so a
        power cut mid-delete leaves a `.trash-*` leftover, never a half tree under a version."""
        path = os.path.join(self.releases, name)
        if not name.startswith("."):
            trash = os.path.join(self.releases, ".trash-%s-%d" % (name, os.getpid()))
            os.rename(path, trash)
            fsync_directory(self.releases)
            path = trash
        shutil.rmtree(path, ignore_errors=True)

    def prune(self, keep):
        """Remove releases and leftovers not in `keep` (the current and previous ones)."""
        for name in os.listdir(self.releases):
            if name not in keep:
                self.discard(name)


def running_version():
    """The version of the release this process runs from, None for a checkout or base install."""
    import kapos

    release = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(kapos.__file__))))
    path = os.path.join(release, RELEASE_FILE)
    try:
        with open(path) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


def running_root():
    """The update root this process was started from (the parent of releases/), or None."""
    import kapos

    release = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(kapos.__file__))))
    parent = os.path.dirname(release)
    if os.path.basename(parent) == "releases" and os.path.isfile(os.path.join(release, RELEASE_FILE)):
        return os.path.dirname(parent)
    return None
