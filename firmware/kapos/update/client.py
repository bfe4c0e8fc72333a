"""Check, download and install an update, verifying everything before writing anything.

Metadata is verified by python-tuf's ngclient (root/targets/snapshot/timestamp roles,
thresholds, expiry, version rollback, snapshot consistency): from the root this terminal
trusts (metadata/root.json) through every root rotation. The channel file
(`channels/<channel>.json`, itself a TUF target) names the release to run; the release
tarball is a TUF target whose length and SHA-256 the signed targets metadata fixes. Only
bytes that match are unpacked, and only a tree whose every file matches its RELEASE.json
is renamed into releases/.
"""

import errno
import json
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request

from kapos.errors import UpdateError
from kapos.io.files import fsync_directory
from kapos.update.layout import Layout, parse_version, verify_release_dir

log = logging.getLogger("kapos.update")

CHUNK = 64 * 1024
HTTP_TIMEOUT = 20.0
DISK_MARGIN = 4 * 1024 * 1024  # left free after unpacking (the journal keeps growing)


class Offer:
    """A newer release the repository offers: version, TUF target info."""

    def __init__(self, version, target, channel_doc):
        self.version = version
        self.target = target  # tuf TargetFile: path, length, hashes
        self.doc = channel_doc

    def __repr__(self):
        return "Offer(%s, %s, %d bytes)" % (self.version, self.target.path, self.target.length)


def _explain(exc):
    """A TUF exception as a sentence an operator can act on."""
    from tuf.api import exceptions as tx

    text = str(exc) or type(exc).__name__
    if isinstance(exc, tx.ExpiredMetadataError):
        return "update metadata expired (%s): the repository must be re-signed (kapos release timestamp)" % text
    if isinstance(exc, (tx.BadVersionNumberError, tx.EqualVersionNumberError)):
        return "replayed or rolled-back metadata, older than this terminal has already seen (%s)" % text
    if isinstance(exc, tx.UnsignedMetadataError):
        return "metadata not signed by enough trusted keys (%s)" % text
    if isinstance(exc, tx.LengthOrHashMismatchError):
        return "downloaded data does not match the signed length or hash (%s)" % text
    if isinstance(exc, tx.DownloadError):
        return "cannot download from the update repository (%s)" % text
    if isinstance(exc, tx.RepositoryError):
        return "update repository refused (%s)" % text
    return "%s: %s" % (type(exc).__name__, text)


class UpdateClient:
    def __init__(self, root, url=None, channel=None):
        self.layout = Layout(root)
        config = self.layout.config()
        self.url = (url or config["url"]).rstrip("/")
        self.channel = channel or config.get("channel", "stable")
        self._updater = None
        self._refreshed = False

    # ------------------------------------------------------------ TUF

    def _tuf(self):
        from tuf.ngclient import Updater, UpdaterConfig

        if self._updater is None:
            if not os.path.isfile(os.path.join(self.layout.metadata, "root.json")):
                raise UpdateError("no trusted root in %s: run `kapos update init`" % self.layout.metadata)
            self._updater = Updater(metadata_dir=self.layout.metadata,
                                    metadata_base_url=self.url + "/metadata/",
                                    target_dir=self.layout.downloads,
                                    target_base_url=self.url + "/targets/",
                                    config=UpdaterConfig(prefix_targets_with_hash=False))
        return self._updater

    def refresh(self):
        """Verify the newest metadata once per client (ngclient refreshes only once)."""
        if self._refreshed:
            return
        try:
            self._tuf().refresh()
            self._refreshed = True
        except UpdateError:
            raise
        except Exception as exc:
            raise UpdateError(_explain(exc))

    def fetch_target_json(self, name):
        """A small signed JSON target (channel file, parameter set), verified, or None."""
        self.refresh()
        updater = self._tuf()
        try:
            info = updater.get_targetinfo(name)
            if info is None:
                return None, None
            path = updater.find_cached_target(info) or updater.download_target(info)
            with open(path, "rb") as f:
                return json.loads(f.read().decode()), info
        except UpdateError:
            raise
        except ValueError:
            raise UpdateError("signed target %s is not JSON" % name)
        except Exception as exc:
            raise UpdateError(_explain(exc))

    def check(self, running, refused=()):
        """The newer release this channel offers, or None. Raises UpdateError with the reason."""
        self.refresh()
        doc, _ = self.fetch_target_json("channels/%s.json" % self.channel)
        if doc is None:
            raise UpdateError("the repository has no channel %r" % self.channel)
        try:
            version, name = doc["version"], doc["release"]
            parse_version(version)
        except (KeyError, TypeError):
            raise UpdateError("channel %s: version or release missing" % self.channel)
        target = self._tuf().get_targetinfo(name)
        if target is None:
            raise UpdateError("channel %s names %s, which the targets metadata does not list" % (self.channel, name))
        signed_version = (target.unrecognized_fields.get("custom") or {}).get("kapos_version")
        if signed_version != version:
            raise UpdateError("channel says %s but release %s is signed as %s" % (version, name, signed_version))
        if running is not None and parse_version(version) < parse_version(running):
            raise UpdateError("refused: the repository offers %s, older than the running %s" % (version, running))
        if running is not None and parse_version(version) == parse_version(running):
            return None
        if version in refused:
            return None  # it failed its trial here once: wait for a newer one
        return Offer(version, target, doc)

    # ------------------------------------------------------------ download

    def download(self, offer, progress=None):
        """The verified tarball's path. Resumes a partial download; a file that ends short
        is kept for the next try, one that does not match is deleted."""
        from tuf.api import exceptions as tx

        os.makedirs(self.layout.downloads, exist_ok=True)
        final = os.path.join(self.layout.downloads, "kapos-%s.tar.gz" % offer.version)
        part = final + ".part"
        length = offer.target.length
        if os.path.exists(final):
            if self._matches(offer, final):
                return final
            os.unlink(final)
        have = os.path.getsize(part) if os.path.exists(part) else 0
        if have > length:
            os.unlink(part)
            have = 0
        if have < length:
            self._fetch(offer.target.path, part, have, length, progress)
        if not self._matches(offer, part):
            os.unlink(part)
            raise UpdateError("download of %s does not match the signed hash: deleted, it starts over "
                              "at the next check" % offer.target.path)
        os.replace(part, final)
        fsync_directory(self.layout.downloads)
        return final

    def _matches(self, offer, path):
        from tuf.api import exceptions as tx

        with open(path, "rb") as f:
            try:
                offer.target.verify_length_and_hashes(f)
            except tx.LengthOrHashMismatchError:
                return False
        return True

    def _fetch(self, name, part, have, length, progress):
        url = "%s/targets/%s" % (self.url, name)
        request = urllib.request.Request(url, headers={"Range": "bytes=%d-" % have} if have else {})
        try:
            response = urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
        except urllib.error.HTTPError as exc:
            raise UpdateError("download of %s refused: HTTP %d" % (name, exc.code))
        except (urllib.error.URLError, OSError) as exc:
            raise UpdateError("cannot reach the update repository: %s" % getattr(exc, "reason", exc))
        with response:
            if have and response.status != 206:
                have = 0  # the server ignores Range: start over
            with open(part, "ab" if have else "wb") as f:
                try:
                    while have < length:
                        block = response.read(min(CHUNK, length - have + 1))
                        if not block:
                            break
                        if have + len(block) > length:
                            raise UpdateError("download of %s is longer than its signed length" % name)
                        f.write(block)
                        have += len(block)
                        if progress is not None:
                            progress("download", have, length)
                except OSError as exc:
                    f.flush()
                    os.fsync(f.fileno())
                    if exc.errno == errno.ENOSPC:
                        raise UpdateError("disk full while downloading %s" % name)
                    raise UpdateError("download of %s interrupted at %d of %d bytes (%s): it resumes at "
                                      "the next check" % (name, have, length, exc))
                f.flush()
                os.fsync(f.fileno())
        if have < length:
            raise UpdateError("download of %s incomplete: %d of %d bytes (the connection ended); it resumes "
                              "at the next check" % (name, have, length))

    # ------------------------------------------------------------ install

    def install(self, offer, tarball, progress=None, free_space=None):
        """Unpack next to the running release; returns its directory. Nothing outside
        releases/.tmp-* is written until the whole tree verifies."""
        layout = self.layout
        dest = layout.release_dir(offer.version)
        if os.path.isdir(dest):
            try:
                if verify_release_dir(dest) == offer.version:
                    return dest
            except UpdateError:
                pass
            layout.discard(offer.version)
        for name in os.listdir(layout.releases):  # leftovers of an install or delete a power cut stopped
            if name.startswith("."):
                layout.discard(name)
        tmp = os.path.join(layout.releases, ".tmp-%s" % offer.version)
        try:
            with tarfile.open(tarball, "r:gz") as tar:
                members = tar.getmembers()
                size = sum(m.size for m in members if m.isfile())
                free = (free_space or (lambda p: shutil.disk_usage(p).free))(layout.releases)
                if free < size + DISK_MARGIN:
                    raise UpdateError("disk full: release %s needs %.1f MB, %.1f MB free; nothing was changed"
                                      % (offer.version, (size + DISK_MARGIN) / 1e6, free / 1e6))
                os.makedirs(tmp)
                done = 0
                for member in members:
                    done += self._extract(tar, member, tmp)
                    if progress is not None:
                        progress("install", done, size)
            version = verify_release_dir(tmp)
            if version != offer.version:
                raise UpdateError("release tarball says %s, the signed metadata %s" % (version, offer.version))
            fsync_directory(tmp)
            os.rename(tmp, dest)
            fsync_directory(layout.releases)
            os.unlink(tarball)  # the unpacked tree is verified; the download is not needed again
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UpdateError("disk full while installing %s: removed the partial copy; the running "
                                  "version is untouched" % offer.version)
            raise UpdateError("cannot install %s: %s" % (offer.version, exc))
        except (UpdateError, tarfile.TarError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, UpdateError):
                raise
            raise UpdateError("release %s is not a valid tarball: %s" % (offer.version, exc))
        return dest

    @staticmethod
    def _extract(tar, member, dest):
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts:
            raise UpdateError("release tarball holds an unsafe path %r" % member.name)
        path = os.path.join(dest, *parts)
        if member.isdir():
            os.makedirs(path, exist_ok=True)
            return 0
        if not member.isfile():
            raise UpdateError("release tarball holds a link or device %r" % member.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        source = tar.extractfile(member)
        with open(path, "wb") as f:
            shutil.copyfileobj(source, f, CHUNK)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, 0o644)
        return member.size
