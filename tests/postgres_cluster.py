"""A private PostgreSQL cluster from Debian's server programs, on a free port: for the tests
(tests/postgres.py) and the benchmark (bench/replicas.py)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import psycopg

from tests.http_helpers import free_port


class ClusterError(RuntimeError):
    """The cluster cannot be made or run; the message says why, with the server's log."""


SUPERUSER: Final = "exporter_test"
DATABASE: Final = "exporter_test"
# A role that must give its password over TCP, where every other role is trusted.
GUARDED_ROLE: Final = "guarded"
PASSWORD: Final = "pw-Zq7!x@y/z"  # noqa: S105 -- the test cluster's, with URL characters
HOST: Final = "127.0.0.1"
PROGRAMS: Final = Path("/usr/lib/postgresql")  # Debian's: VERSION/bin/initdb
INSTALL: Final = (
    "install Debian's postgresql package (`apt-get install postgresql`; `make system-deps` "
    "and .ci/run do)"
)
SETTINGS: Final = """
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{sockets}'
max_connections = 100
shared_buffers = 16MB
"""
# For tests, thrown away afterwards: a crash of the machine cannot matter, so skip the flushes.
UNDURABLE: Final = """
fsync = off
synchronous_commit = off
full_page_writes = off
"""
ACCESS: Final = f"""
local all all trust
host all {GUARDED_ROLE} {HOST}/32 scram-sha-256
host all all {HOST}/32 trust
"""


@dataclass
class Cluster:
    """A running cluster: its superuser, a database of that name, and a role with a password."""

    programs: Path
    root: Path
    port: int
    owner: dict[str, Any]
    durable: bool = False
    _numbers: Iterator[int] = field(default_factory=lambda: count(1))

    @property
    def url(self) -> str:
        """The superuser's URL of the database the cluster starts with."""
        return self.url_for(DATABASE)

    def url_for(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        """A URL of `database` on this cluster, as `user`, with `password` if given."""
        credentials = f"{user}:{quote(password, safe='')}" if password else user
        return f"postgresql://{credentials}@{HOST}:{self.port}/{database}"

    def create_database(self, owner: str = SUPERUSER) -> str:
        """A new, empty database owned by `owner`; its name, unique in the session."""
        name = f"test_{next(self._numbers)}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def run(self, program: str, *args: str, check: bool = True) -> str:
        """Run one of PostgreSQL's programs as the cluster's owner; its output. Raise
        ClusterError, showing the server's log, if it fails and `check` is set."""
        done = subprocess.run(
            [str(self.programs / program), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=60,
            check=False,
            **self.owner,
        )
        if check and done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ClusterError(
                f"{program} {' '.join(args)} failed:\n{done.stdout}{done.stderr}{tail}"
            )
        return str(done.stdout)

    def start(self) -> None:
        """Create the cluster, start it, and add the test database and the password role."""
        data = self.root / "data"
        initdb = (f"--pgdata={data}", f"--username={SUPERUSER}", "--auth=trust", "--no-sync")
        self.run("initdb", *initdb, "--encoding=UTF8", "--locale=C")
        settings = SETTINGS.format(host=HOST, port=self.port, sockets=self.root)
        if not self.durable:
            settings += UNDURABLE
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        (data / "pg_hba.conf").write_text(ACCESS)
        log = str(self.root / "server.log")
        self.run("pg_ctl", "-D", str(data), "-l", log, "-w", "-t", "30", "start")
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
            connection.execute(
                f"CREATE ROLE {GUARDED_ROLE} LOGIN PASSWORD '{PASSWORD}'"  # a test constant
            )

    def stop(self) -> None:
        """Stop the server at once and remove its files."""
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def server_programs() -> Path:
    """The bin directory of the newest PostgreSQL installed; fail, naming the package, if none."""
    found = sorted(
        PROGRAMS.glob("*/bin/initdb"),
        key=lambda initdb: [int(part) for part in initdb.parts[-3].split(".") if part.isdigit()],
    )
    if not found:
        raise ClusterError(f"initdb and pg_ctl are missing in {PROGRAMS}/*/bin: {INSTALL}")
    return found[-1].parent


def unprivileged_owner(root: Path) -> dict[str, Any]:
    """How to run the server's programs: as `postgres` when root (initdb refuses root), else
    as ourselves; `root` is handed to that user."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError(
            f"running as root, PostgreSQL needs the user postgres: {INSTALL}"
        ) from None
    os.chown(root, user.pw_uid, user.pw_gid)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def running_cluster(durable: bool = False) -> Iterator[Cluster]:
    """A cluster started on a free port in a new temporary directory, removed at the end;
    `durable` keeps PostgreSQL's flushes on."""
    programs = server_programs()
    root = Path(tempfile.mkdtemp(prefix="sipgate-exporter-pg-"))
    cluster = Cluster(programs, root, free_port(), unprivileged_owner(root), durable)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
