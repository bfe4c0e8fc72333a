"""Helpers for the update tests: a signed repository in a temp dir, releases built from
copies of this checkout, the repository served on 127.0.0.1, terminal update roots."""

import os
import shutil
import subprocess
import sys

from kapos_tools.host.update_repo import RepoHandler, RepoServer
from kapos_tools.release import keys as keys_mod
from kapos_tools.release.build import build_tarball
from kapos_tools.release.repo import Repository

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PYTHON = sys.executable


class Site:
    """An update repository with its keys (keys outside the repository, in the temp dir)."""

    def __init__(self, base):
        self.keys = os.path.join(base, "keys")
        self.dir = os.path.join(base, "site")
        self.base = base
        for role in keys_mod.ROLES:
            keys_mod.generate(self.keys, role)
        self.repo = Repository(self.dir, self.keys)
        self.repo.init()

    def source(self, version, patch=None):
        """A checkout copy (firmware/kapos only) for `version`; patch: {relpath: (old, new)}."""
        src = os.path.join(self.base, "src-" + version)
        if not os.path.isdir(src):
            shutil.copytree(os.path.join(ROOT, "firmware", "kapos"), os.path.join(src, "firmware", "kapos"),
                            ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copytree(os.path.join(ROOT, "boards"), os.path.join(src, "boards"))
            for rel, (old, new) in (patch or {}).items():
                path = os.path.join(src, "firmware", "kapos", rel)
                text = open(path).read()
                assert old in text, "patch target not found in %s" % rel
                with open(path, "w") as f:
                    f.write(text.replace(old, new, 1))
        return src

    def release(self, version, patch=None, channel="stable", expires=None):
        self.repo.release(channel, version, build_tarball(self.source(version, patch), version), expires=expires)

    def tarball_path(self, version):
        return os.path.join(self.dir, "targets", "releases", "kapos-%s.tar.gz" % version)

    def snapshot_copy(self, name):
        """A copy of the whole published directory (to replay it later)."""
        dest = os.path.join(self.base, name)
        shutil.copytree(self.dir, dest)
        return dest


def serve(directory, handler=RepoHandler):
    return RepoServer(directory, ("127.0.0.1", 0), handler).start()


def kapos(*args, timeout=120, env=None):
    """`kapos ...` in a child process (the base install): CompletedProcess with text output."""
    return subprocess.run([PYTHON, "-m", "kapos.cli"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env)


def init_root(root, url, site, channel="stable"):
    out = kapos("update", "init", "--root", root, "--url", url, "--channel", channel,
                "--trusted-root", os.path.join(site.dir, "metadata", "1.root.json"))
    assert out.returncode == 0, out.stderr
    return root


def tree_digest(path):
    """{relative path: bytes} of every file under path (the journal and keys directory)."""
    found = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found


def install_in_process(root, url, site, version):
    """`kapos update init` and `apply` then a confirmed trial, without child processes."""
    from kapos.update import trial
    from kapos.update.client import UpdateClient
    from kapos.update.layout import Layout

    layout = Layout(root)
    layout.ensure()
    shutil.copyfile(os.path.join(site.dir, "metadata", "1.root.json"), os.path.join(layout.metadata, "root.json"))
    layout.write_config({"url": url, "channel": "stable"})
    client = UpdateClient(root)
    offer = client.check(None)
    assert offer.version == version
    client.install(offer, client.download(offer))
    trial.begin(layout, version)
    trial.confirm(layout, version)
    return layout
