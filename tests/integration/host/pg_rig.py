"""A real PostgreSQL server for the host tests: Debian's postgresql package (initdb and
pg_ctl from /usr/lib/postgresql/<version>/bin, installed by the Makefile's stamp), a
cluster in a temporary directory, listening on 127.0.0.1 only on a free port, run as an
unprivileged user when the tests run as root (postgres refuses to run as root).

    server = PostgresServer.start(directory)   # or raises Unavailable(reason)
    url = server.new_schema()                  # a fresh, empty schema per ledger
    server.stop()
"""

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess


class Unavailable(Exception):
    """No PostgreSQL server can be run here (the reason says why)."""


def _bin_dir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql; "
                      "`make test` does it as root)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, directory, bin_dir, port, user):
        self.directory, self.bin_dir, self.port, self.user = directory, bin_dir, port, user
        self._schemas = itertools.count(1)
        self._admin = None

    @classmethod
    def start(cls, directory, durable=False):
        """durable=False (tests): no fsync - the tests kill host processes, never the
        server; the benchmark starts a durable one (fsync and synchronous commit on)."""
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise Unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
        bin_dir = _bin_dir()
        directory = str(directory)
        data = os.path.join(directory, "data")
        prefix = []
        owner = None
        if os.geteuid() == 0:  # postgres will not run as root: as nobody, in its own dir
            owner = pwd.getpwnam("nobody")
            os.chmod(directory, 0o755)
            os.makedirs(data, mode=0o700)
            os.chown(data, owner.pw_uid, owner.pw_gid)
            prefix = ["runuser", "-u", "nobody", "--"]
        run = lambda *args: subprocess.run(prefix + list(args), capture_output=True, text=True,
                                           timeout=60, cwd="/")
        result = run(os.path.join(bin_dir, "initdb"), "-D", data, "-A", "trust", "-U", "kapos",
                     "-E", "UTF8", "--no-instructions")
        if result.returncode:
            raise Unavailable("initdb failed: %s" % (result.stderr.strip()[-300:]))
        last = None
        for _ in range(3):  # a free port can be taken between the probe and the start
            port = _free_port()
            options = "-h 127.0.0.1 -p %d -k %s -c max_connections=60" % (port, data)
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            result = run(os.path.join(bin_dir, "pg_ctl"), "-D", data, "-o", options, "-w",
                         "-t", "30", "-l", os.path.join(data, "server.log"), "start")
            if result.returncode == 0:
                return cls(directory, bin_dir, port, owner)
            last = result.stderr.strip() or result.stdout.strip()
        raise Unavailable("pg_ctl could not start the server: %s" % last[-300:])

    @property
    def url(self):
        return "postgresql://kapos@127.0.0.1:%d/postgres" % self.port

    def new_schema(self):
        """A URL whose connections see a fresh empty schema (one ledger per test)."""
        import psycopg

        if self._admin is None:
            self._admin = psycopg.connect(self.url, autocommit=True)
        name = "t%d" % next(self._schemas)
        self._admin.execute("CREATE SCHEMA %s" % name)
        return self.url + "?options=-csearch_path%%3D%s" % name

    def stop(self):
        if self._admin is not None:
            self._admin.close()
        prefix = ["runuser", "-u", "nobody", "--"] if self.user is not None else []
        subprocess.run(prefix + [os.path.join(self.bin_dir, "pg_ctl"), "-D",
                                 os.path.join(self.directory, "data"), "-m", "fast", "-w",
                                 "stop"], capture_output=True, timeout=60, cwd="/")
