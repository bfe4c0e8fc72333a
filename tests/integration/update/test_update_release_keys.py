"""`kapos release` key handling: keys never inside a repository, rotation followed by terminals,
a threshold that one key cannot meet."""

import os
import subprocess

import pytest

from kapos.errors import UpdateError
from kapos.update import trial
from kapos.update.client import UpdateClient
from kapos.update.layout import Layout
from kapos_tools.release import keys as keys_mod
from kapos_tools.release.repo import Repository
from updatekit import Site, init_root, kapos, serve


def test_keys_inside_a_git_work_tree_or_the_site_are_refused(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    out = kapos("release", "keygen", "--keys-dir", str(checkout / "release-keys"))
    assert out.returncode != 0 and "inside the git work tree" in out.stderr
    assert not (checkout / "release-keys").exists()
    with pytest.raises(UpdateError, match="inside the published repository"):
        Repository(str(tmp_path / "site"), str(tmp_path / "site" / "keys"))


def test_key_files_are_private_and_a_readable_one_is_refused(tmp_path):
    keys_mod.generate(str(tmp_path), "targets")
    (path,) = [os.path.join(tmp_path, "targets", n) for n in os.listdir(tmp_path / "targets")]
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(UpdateError, match="readable by others"):
        keys_mod.load(str(tmp_path), "targets")


def test_a_rotated_targets_key_is_followed_and_the_old_key_no_longer_signs(tmp_path):
    site = Site(str(tmp_path))
    site.release("1.0.0")
    server = serve(site.dir)
    try:
        root = init_root(str(tmp_path / "root"), server.url, site)
        assert kapos("update", "apply", "--root", root).returncode == 0
        trial.confirm(Layout(root), "1.0.0")
        old_keys = keys_mod.load(site.keys, "targets")
        out = kapos("release", "rotate", "--keys-dir", site.keys, "--repo", site.dir, "--role", "targets")
        assert out.returncode == 0, out.stderr
        site.release("2.0.0")
        assert UpdateClient(root).check("1.0.0").version == "2.0.0"  # walked 2.root.json
        # someone holding only the old (rotated-out) targets key signs a release: refused
        from tuf.api.metadata import Metadata

        path = os.path.join(site.dir, "metadata", "targets.json")
        md = Metadata.from_file(path)
        md.signed.version += 1
        md.signatures.clear()
        for signer in old_keys.values():
            md.sign(signer)
        md.to_file(path)
        site.repo.publish_snapshot()
        with pytest.raises(UpdateError, match="not signed by enough trusted keys"):
            UpdateClient(root).check("1.0.0")
    finally:
        server.stop()


def test_a_threshold_of_two_root_keys_is_not_met_by_one(tmp_path):
    keys_dir = str(tmp_path / "keys")
    for role in keys_mod.ROLES:
        keys_mod.generate(keys_dir, role)
    keys_mod.generate(keys_dir, "root")
    repo = Repository(str(tmp_path / "site"), keys_dir)
    repo.init({"root": 2})
    (one,) = list(keys_mod.load(keys_dir, "root"))[:1]
    keys_mod.retire(keys_dir, "root", one)
    with pytest.raises(UpdateError, match="root needs 2 signature"):
        repo.rotate("timestamp")
