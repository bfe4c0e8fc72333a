"""The update repository: TUF metadata (python-tuf Metadata API) and targets, as static files.

    <repo>/metadata/1.root.json, 2.root.json ...   every root version (clients walk them)
    <repo>/metadata/root.json                      the newest root (to bootstrap a terminal)
    <repo>/metadata/{targets,snapshot,timestamp}.json
    <repo>/targets/releases/kapos-<version>.tar.gz
    <repo>/targets/channels/<channel>.json          {"version", "release"}: what a channel runs
    <repo>/targets/params/<channel>.json            a parameter set (kapos.update.params)

Any web server can serve the directory (the reference host does: `kapos host --update-repo`).
"""

import json
import os
from datetime import datetime, timedelta, timezone

from kapos.errors import UpdateError
from kapos.update.layout import parse_version
from kapos_tools.release import keys as keys_mod

EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}


def _expires(role, seconds=None):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now + (timedelta(seconds=seconds) if seconds is not None else timedelta(days=EXPIRY_DAYS[role]))


class Repository:
    def __init__(self, repo_dir, keys_dir):
        keys_mod.check_keys_dir(keys_dir, repo_dir)
        self.dir = repo_dir
        self.keys_dir = keys_dir
        self.metadata_dir = os.path.join(repo_dir, "metadata")
        self.targets_dir = os.path.join(repo_dir, "targets")

    # ------------------------------------------------------------ files

    def _path(self, role, version=None):
        name = "%d.%s.json" % (version, role) if version is not None else "%s.json" % role
        return os.path.join(self.metadata_dir, name)

    def open(self, role):
        from tuf.api.metadata import Metadata

        try:
            return Metadata.from_file(self._path(role))
        except FileNotFoundError:
            raise UpdateError("%s has no %s metadata: run `kapos release init`" % (self.dir, role))

    def _write(self, role, md):
        from tuf.api.serialization.json import JSONSerializer

        data = md.to_bytes(JSONSerializer(compact=False))
        paths = [self._path(role)] + ([self._path(role, md.signed.version)] if role == "root" else [])
        for path in paths:
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)

    def _sign(self, role, md, extra_signers=()):
        signers = keys_mod.load(self.keys_dir, role)
        root = md if role == "root" else self.open("root")
        wanted = root.signed.roles[role].keyids
        usable = [s for kid, s in signers.items() if kid in wanted] + list(extra_signers)
        threshold = root.signed.roles[role].threshold
        if len(usable) < threshold:
            raise UpdateError("%s needs %d signature(s), the keys directory has %d of its keys"
                              % (role, threshold, len(usable)))
        md.signatures.clear()
        for signer in usable:
            md.sign(signer, append=True)

    # ------------------------------------------------------------ init

    def init(self, thresholds=None):
        from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

        if os.path.exists(self._path("root")):
            raise UpdateError("%s is already a repository (root.json exists)" % self.dir)
        os.makedirs(self.metadata_dir, exist_ok=True)
        os.makedirs(self.targets_dir, exist_ok=True)
        root = Metadata(Root(expires=_expires("root"), consistent_snapshot=False))
        for role in keys_mod.ROLES:
            signers = keys_mod.load(self.keys_dir, role)
            if not signers:
                raise UpdateError("no %s key in %s: run `kapos release keygen` first" % (role, self.keys_dir))
            for signer in signers.values():
                root.signed.add_key(signer.public_key, role)
            threshold = (thresholds or {}).get(role, 1)
            if threshold > len(signers):
                raise UpdateError("%s threshold %d but only %d key(s)" % (role, threshold, len(signers)))
            root.signed.roles[role].threshold = threshold
        self._sign("root", root)
        self._write("root", root)
        targets = Metadata(Targets(expires=_expires("targets")))
        self._sign("targets", targets)
        self._write("targets", targets)
        snapshot = Metadata(Snapshot(expires=_expires("snapshot")))
        snapshot.signed.meta["targets.json"] = MetaFile(version=1)
        self._sign("snapshot", snapshot)
        self._write("snapshot", snapshot)
        timestamp = Metadata(Timestamp(expires=_expires("timestamp")))
        timestamp.signed.snapshot_meta = MetaFile(version=1)
        self._sign("timestamp", timestamp)
        self._write("timestamp", timestamp)

    # ------------------------------------------------------------ publishing

    def add_targets(self, files, expires=None):
        """files: {target name: (bytes, custom dict or None)}. Writes the files, then signs
        targets, snapshot and timestamp (in that order, so a reader never sees a snapshot
        that names targets metadata not yet written)."""
        from tuf.api.metadata import TargetFile

        targets = self.open("targets")
        for name, (data, custom) in files.items():
            path = os.path.join(self.targets_dir, *name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
            info = TargetFile.from_data(name, data, ["sha256"])
            if custom:
                info.unrecognized_fields["custom"] = custom
            targets.signed.targets[name] = info
        self._bump("targets", targets, expires)
        self.publish_snapshot(expires)

    def publish_snapshot(self, expires=None):
        from tuf.api.metadata import MetaFile

        targets = self.open("targets")
        snapshot = self.open("snapshot")
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        self._bump("snapshot", snapshot, expires)
        self.resign_timestamp(expires)

    def resign_timestamp(self, expires=None):
        """A fresh timestamp (run daily: a terminal refuses one past its expiry, so a mirror
        cannot freeze it on old metadata for longer than that)."""
        from tuf.api.metadata import MetaFile

        snapshot = self.open("snapshot")
        timestamp = self.open("timestamp")
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        self._bump("timestamp", timestamp, expires)

    def _bump(self, role, md, expires):
        md.signed.version += 1
        md.signed.expires = _expires(role, expires)
        self._sign(role, md)
        self._write(role, md)

    def channel(self, channel):
        path = os.path.join(self.targets_dir, "channels", channel + ".json")
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def release(self, channel, version, tarball, force=False, expires=None):
        parse_version(version)
        old = self.channel(channel)
        if old and parse_version(old["version"]) >= parse_version(version) and not force:
            raise UpdateError("channel %s already runs %s: a release must have a higher version" % (
                channel, old["version"]))
        name = "releases/kapos-%s.tar.gz" % version
        doc = {"version": version, "release": name}
        self.add_targets({name: (tarball, {"kapos_version": version}),
                          "channels/%s.json" % channel: (json.dumps(doc, sort_keys=True).encode(), None)},
                         expires)
        return name

    # ------------------------------------------------------------ key rotation

    def rotate(self, role):
        """Replace every key of `role` by a new one. The new root version is signed by the
        old root keys (so terminals accept it) and, for a root rotation, by the new ones."""
        root = self.open("root")
        trusted = root.signed.roles["root"]
        old_signers = {kid: s for kid, s in keys_mod.load(self.keys_dir, "root").items() if kid in trusted.keyids}
        if len(old_signers) < trusted.threshold:  # terminals would refuse the new root anyway
            raise UpdateError("root needs %d signature(s) from the current root keys, the keys directory "
                              "has %d of them" % (trusted.threshold, len(old_signers)))
        new = keys_mod.generate(self.keys_dir, role)
        old_ids = [kid for kid in root.signed.roles[role].keyids if kid != new.public_key.keyid]
        for kid in old_ids:
            root.signed.revoke_key(kid, role)
        root.signed.add_key(new.public_key, role)
        root.signed.roles[role].threshold = 1
        root.signed.version += 1
        root.signed.expires = _expires("root")
        root.signatures.clear()
        signers = list(old_signers.values())
        if role == "root":
            signers = [s for kid, s in old_signers.items() if kid in old_ids] + [new]
        for signer in signers:
            root.sign(signer, append=True)
        self._write("root", root)
        for kid in old_ids:
            if os.path.exists(os.path.join(self.keys_dir, role, kid + ".pem")):
                keys_mod.retire(self.keys_dir, role, kid)
        # everything the rotated role signs is signed again with the new key
        if role == "targets":
            self._bump("targets", self.open("targets"), None)
        if role in ("targets", "snapshot"):
            self.publish_snapshot()
        elif role == "timestamp":
            self.resign_timestamp()
        return new.public_key.keyid
