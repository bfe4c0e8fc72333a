"""Engines for the host tests: tests that take the `engine` fixture (or carry
`pytestmark = pytest.mark.usefixtures("engine")`) run once on SQLite and once on a real
PostgreSQL server started here (pg_rig.py; skipped, with the reason, where none can be
had). `hostkit.new_ledger()` and `hostkit.ledger_url()` follow the engine of the test."""

import shutil
import tempfile

import pytest

import hostkit
from pg_rig import PostgresServer, Unavailable


@pytest.fixture(scope="session")
def postgres_server():
    directory = tempfile.mkdtemp(prefix="kapos-pg-")  # under /tmp: the server's user reads it
    try:
        server = PostgresServer.start(directory)
    except Unavailable as exc:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip("PostgreSQL engine: %s" % exc)
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        hostkit.ENGINE.set(server.new_schema)
    else:
        hostkit.ENGINE.set(None)
    yield request.param
    hostkit.ENGINE.set(None)


@pytest.fixture
def pg_url(postgres_server):
    """A fresh PostgreSQL ledger URL (for tests that are about PostgreSQL only)."""
    return postgres_server.new_schema()
