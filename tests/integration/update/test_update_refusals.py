"""Bad releases and bad input are refused with a clear reason, and nothing is written:
the running version, `current`, releases/ and state.json stay as they were."""

import errno
import json
import os
import shutil

import pytest

from kapos.errors import UpdateError
from kapos.update import client as client_mod
from kapos.update.client import UpdateClient
from kapos.update.layout import Layout
from kapos_tools.host.update_repo import RepoHandler
from updatekit import Site, install_in_process, kapos, serve


@pytest.fixture
def installed(tmp_path):
    """A site with 1.0.0 released and a terminal root running 1.0.0 (confirmed)."""
    site = Site(str(tmp_path))
    site.release("1.0.0")
    server = serve(site.dir)
    root = str(tmp_path / "root")
    layout = install_in_process(root, server.url, site, "1.0.0")
    yield site, server, root, layout
    server.stop()


def snapshot(layout):
    """What must not change when an update is refused."""
    with open(layout.state_path) as f:
        state = f.read()
    return layout.current(), layout.installed(), sorted(os.listdir(layout.releases)), state


def apply(root):
    out = kapos("update", "apply", "--root", root)
    return out.returncode, out.stderr


def test_a_tampered_release_is_refused_and_nothing_is_written(installed):
    site, server, root, layout = installed
    site.release("2.0.0")
    path = site.tarball_path("2.0.0")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01  # same length, one bit different
    open(path, "wb").write(bytes(data))
    before = snapshot(layout)
    code, err = apply(root)
    assert code != 0 and "does not match the signed hash" in err
    assert snapshot(layout) == before
    assert not [n for n in os.listdir(layout.downloads) if ".tar.gz" in n]  # the bad download is deleted


def test_tampered_metadata_is_refused(installed):
    site, server, root, layout = installed
    site.release("2.0.0")
    path = os.path.join(site.dir, "metadata", "targets.json")
    doc = json.load(open(path))
    name = "releases/kapos-2.0.0.tar.gz"
    doc["signed"]["targets"][name]["length"] += 1  # an attacker's edit, signature unchanged
    json.dump(doc, open(path, "w"))
    before = snapshot(layout)
    code, err = apply(root)
    assert code != 0 and ("not signed by enough trusted keys" in err or "does not match" in err)
    assert snapshot(layout) == before


def test_replayed_old_metadata_is_refused(installed, tmp_path):
    """A mirror that serves yesterday's repository (freeze / rollback attack)."""
    site, server, root, layout = installed
    old = site.snapshot_copy("old-site")  # the repository as it was with 1.0.0
    site.release("2.0.0")
    assert apply(root)[0] == 0  # the terminal has seen the newer metadata
    from kapos.update import trial

    trial.confirm(layout, "2.0.0")
    replay = serve(old)
    try:
        cfg = layout.config()
        layout.write_config(dict(cfg, url=replay.url))
        before = snapshot(layout)
        code, err = apply(root)
        assert code != 0 and "replayed or rolled-back metadata" in err
        assert snapshot(layout) == before and layout.current() == "2.0.0"
    finally:
        replay.stop()


def test_a_signed_but_older_version_is_refused(installed):
    site, server, root, layout = installed
    site.release("2.0.0")
    assert apply(root)[0] == 0
    from kapos.update import trial

    trial.confirm(layout, "2.0.0")
    site.repo.release("stable", "1.5.0", open(site.tarball_path("1.0.0"), "rb").read(), force=True)
    before = snapshot(layout)
    code, err = apply(root)
    assert code != 0 and "older than the running 2.0.0" in err
    assert snapshot(layout) == before


def test_expired_metadata_is_refused(installed):
    site, server, root, layout = installed
    site.release("2.0.0")
    site.repo.resign_timestamp(expires=-60)  # a repository nobody re-signed: frozen
    before = snapshot(layout)
    code, err = apply(root)
    assert code != 0 and "update metadata expired" in err
    assert snapshot(layout) == before


class CutHandler(RepoHandler):
    """Ends the first tarball response halfway (a dropped connection); records Range headers."""
    cut = [True]
    ranges = []

    def send_body(self, f, length):
        if self.path.endswith(".tar.gz"):
            self.ranges.append(self.headers.get("Range"))
            if self.cut[0]:
                self.cut[0] = False
                self.wfile.write(f.read(length // 2))
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
        super().send_body(f, length)


def test_a_truncated_download_is_kept_and_resumed(installed, tmp_path):
    site, server, root, layout = installed
    site.release("2.0.0")
    cutting = serve(site.dir, CutHandler)
    try:
        layout.write_config(dict(layout.config(), url=cutting.url))
        before = snapshot(layout)
        code, err = apply(root)
        assert code != 0 and "incomplete" in err and "resumes" in err
        assert snapshot(layout) == before
        part = os.path.join(layout.downloads, "kapos-2.0.0.tar.gz.part")
        assert 0 < os.path.getsize(part) < os.path.getsize(site.tarball_path("2.0.0"))
        code, err = apply(root)
        assert code == 0, err
        assert CutHandler.ranges[-1] == "bytes=%d-" % (os.path.getsize(site.tarball_path("2.0.0")) // 2)
        assert layout.current() == "2.0.0"
    finally:
        cutting.stop()


def test_a_full_disk_before_install_is_refused_with_the_sizes(installed):
    site, server, root, layout = installed
    site.release("2.0.0")
    client = UpdateClient(root)
    offer = client.check("1.0.0")
    tarball = client.download(offer)
    before = snapshot(layout)
    with pytest.raises(UpdateError, match="disk full: release 2.0.0 needs .* MB, .* MB free"):
        client.install(offer, tarball, free_space=lambda path: 1_000_000)
    assert snapshot(layout) == before


def test_the_disk_filling_up_during_install_removes_the_partial_copy(installed, monkeypatch):
    site, server, root, layout = installed
    site.release("2.0.0")
    client = UpdateClient(root)
    offer = client.check("1.0.0")
    tarball = client.download(offer)
    written = []
    real_copy = shutil.copyfileobj

    def filling(src, dst, length=0):
        if len(written) >= 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(1)
        real_copy(src, dst, length)

    monkeypatch.setattr(client_mod.shutil, "copyfileobj", filling)
    before = snapshot(layout)
    with pytest.raises(UpdateError, match="disk full while installing 2.0.0: removed the partial copy"):
        client.install(offer, tarball)
    assert snapshot(layout) == before  # no releases/.tmp-2.0.0 left either


def test_a_tarball_with_an_unsafe_path_is_refused(installed):
    """Even signed: a release may not write outside its own directory."""
    import io
    import tarfile

    site, server, root, layout = installed
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../evil.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    site.repo.release("stable", "2.0.0", raw.getvalue())
    before = snapshot(layout)
    code, err = apply(root)
    assert code != 0 and "unsafe path" in err
    assert snapshot(layout) == before
    assert not os.path.exists(os.path.join(os.path.dirname(root), "evil.py"))
