"""Engines for the host tests: a test module that imports these fixtures
(`from engines import engine  # noqa: F401`) and takes `engine` (or carries
`pytestmark = pytest.mark.usefixtures("engine")`) runs once on SQLite and once on a real
PostgreSQL server (pg_rig.py; skipped, with the reason, where none can be had).
`hostkit.new_ledger()` and `hostkit.ledger_url()` follow the engine of the test.

Not a conftest.py: a `conftest` module here would shadow tests/integration/conftest.py
for the tests that import from it. One server per test process (started on first use,
stopped at exit), whichever modules use it."""

import atexit
import shutil
import tempfile

import pytest

import hostkit
from pg_rig import PostgresServer, Unavailable

_server = {}


def _shared_server():
    if "server" not in _server:
        directory = tempfile.mkdtemp(prefix="kapos-pg-")  # under /tmp: the server's user reads it
        try:
            _server["server"] = PostgresServer.start(directory)
        except Unavailable as exc:
            shutil.rmtree(directory, ignore_errors=True)
            _server["server"] = exc
        else:
            def stop(server=_server["server"]):
                server.stop()
                shutil.rmtree(directory, ignore_errors=True)
            atexit.register(stop)
    if isinstance(_server["server"], Unavailable):
        pytest.skip("PostgreSQL engine: %s" % _server["server"])
    return _server["server"]


@pytest.fixture
def postgres_server():
    return _shared_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    if request.param == "postgresql":
        hostkit.ENGINE.set(_shared_server().new_schema)
    else:
        hostkit.ENGINE.set(None)
    yield request.param
    hostkit.ENGINE.set(None)


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL ledger URL (for tests that are about PostgreSQL only)."""
    return _shared_server().new_schema()
