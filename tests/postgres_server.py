"""A real PostgreSQL server for the tests, from the system's packages (`apt-get install
postgresql`): initdb and pg_ctl, in a temporary folder, on a free loopback port, with its unix
socket in that folder. The server refuses to run as root, so as root it runs as the `postgres`
user, in a folder that user owns.

PostgreSQL cannot be told to pick a port itself, so a port that was free when probed may be taken
by another process (another test worker) before the server binds it: the start is tried again on
another port then, a bounded number of times."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "claim"
"""The server's superuser, whose password the tests' URLs carry."""

START_ATTEMPTS = 5
"""How many free ports a start tries before it gives up."""


@dataclass(frozen=True)
class PostgresServer:
    folder: Path
    port: int
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl, the newest version installed; None without one."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def start(binaries: Path) -> PostgresServer:
    """initdb and start a server; `stop` ends it and removes its folder."""
    folder = Path(tempfile.mkdtemp(prefix="pulumi-claim-postgres-"))
    password = "pg-" + secrets.token_hex(12)
    (folder / "password").write_text(password, encoding="utf-8")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "password", "postgres", "postgres")
    _as_server_user(
        str(binaries / "initdb"),
        "--pgdata",
        str(folder / "data"),
        "--username",
        USER,
        "--pwfile",
        str(folder / "password"),
        "--auth-local",
        "trust",
        "--auth-host",
        "scram-sha-256",
        "--no-sync",
    )
    for attempt in range(1, START_ATTEMPTS + 1):
        port = _free_port()
        (folder / "server.log").unlink(missing_ok=True)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        try:
            _as_server_user(
                str(binaries / "pg_ctl"),
                "start",
                "--wait",
                "--pgdata",
                str(folder / "data"),
                "--log",
                str(folder / "server.log"),
                "-o",
                options,
            )
        except subprocess.CalledProcessError:
            if attempt == START_ATTEMPTS or not _port_was_taken(folder):
                raise
            continue
        return PostgresServer(folder, port, password)
    raise AssertionError("the last attempt returns or raises")


def stop(binaries: Path, server: PostgresServer) -> None:
    _as_server_user(
        str(binaries / "pg_ctl"),
        "stop",
        "--wait",
        "-m",
        "fast",
        "--pgdata",
        str(server.folder / "data"),
    )
    shutil.rmtree(server.folder, ignore_errors=True)


def _as_server_user(*command: str) -> None:
    """Run `command` as `postgres` when the tests run as root, else as the tests' user."""
    if os.geteuid() == 0:
        command = ("runuser", "-u", "postgres", "--", *command)
    subprocess.run(command, check=True, capture_output=True, cwd="/")


def _port_was_taken(folder: Path) -> bool:
    """Whether the server's last start failed because its port was in use (its log says so)."""
    log = folder / "server.log"
    return log.is_file() and "Address already in use" in log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
