"""Fixtures of the update tests (helpers in updatekit.py, imported by name)."""

import pytest

from updatekit import Site, init_root, serve


@pytest.fixture
def setup(tmp_path):
    """(site with release 1.0.0 published, a terminal's update root on it, tmp_path)."""
    site = Site(str(tmp_path))
    site.release("1.0.0")
    server = serve(site.dir)
    root = init_root(str(tmp_path / "root"), server.url, site)
    yield site, root, tmp_path
    server.stop()
