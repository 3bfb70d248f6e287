"""One PostgreSQL data directory and the programs that act on it."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pgherd.errors import (
    CommandFailed,
    DataDirNotEmpty,
    InvalidInput,
    QueryFailed,
    Refused,
    TimedOut,
    WalGone,
    last_lines,
)
from pgherd.pg import conf, controldata, hba, keeper, process
from pgherd.pg.binaries import PgBin
from pgherd.pg.osuser import OsUser
from pgherd.pg.run import popen_kwargs, program_env, run
from pgherd.pg.wal_gone import GoneWatch

if TYPE_CHECKING:
    import psycopg

STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"


@dataclass(frozen=True)
class Instance:
    data_dir: Path
    pgbin: PgBin
    user: OsUser
    port: int
    socket_dir: Path
    log_file: Path
    superuser: str = "postgres"

    # ---- creating --------------------------------------------------------------------

    def initdb(
        self, superuser_password: str, timeout: float = 120, prefix: Sequence[str] = ()
    ) -> None:
        """A new cluster: data checksums, scram-sha-256 on TCP, peer locally, UTF-8.
        ``prefix``: what initdb's command line starts with (an agent's ``setpriv
        --pdeathsig``, so that an initdb never outlives the agent that started it)."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DataDirNotEmpty(
                f"{self.data_dir} is not empty", "choose an empty directory or remove it first"
            )
        self.user.make_dir(self.data_dir)
        pwfile = self.data_dir.parent / f".initdb-pw-{os.getpid()}"
        self.user.write_file(pwfile, superuser_password + "\n")
        try:
            run(
                [
                    *prefix,
                    self.pgbin["initdb"],
                    "-D",
                    self.data_dir,
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--data-checksums",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                self.user,
                timeout=timeout,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def write_settings(self, node: str, settings: Mapping[str, conf.Setting]) -> None:
        """Rewrite pgherd.conf and make sure postgresql.conf includes it."""
        self.user.write_file(self.data_dir / conf.INCLUDE_FILE, conf.render(node, settings))
        main = self.data_dir / "postgresql.conf"
        text = main.read_text() if main.exists() else ""
        updated = conf.with_include(text)
        if updated != text:
            self.user.write_file(main, updated)

    def write_access(self, rules: list[hba.HbaRule], ident: list[str]) -> None:
        hba_path = self.data_dir / "pg_hba.conf"
        ident_path = self.data_dir / "pg_ident.conf"
        lines = [rule.line() for rule in rules]
        self.user.write_file(hba_path, hba.with_block(_read(hba_path), lines))
        self.user.write_file(ident_path, hba.with_block(_read(ident_path), ident))

    def check_config(self) -> None:
        """Have ``postgres`` read the configuration files as a start or a reload would
        (``postgres -C``, which a running server does not mind): raises Refused with its
        own words when it would refuse them (an unknown parameter, a bad value)."""
        done = run(
            [self.pgbin["postgres"], "-D", self.data_dir, "-C", "data_directory"],
            self.user,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise Refused(
                f"PostgreSQL refuses the configuration: {conf.config_errors(done.stderr)}",
                "fix settings: in pgherd.yaml (nothing was changed)",
            )

    def set_standby(self, standby: bool) -> None:
        signal_file = self.data_dir / STANDBY_SIGNAL
        if standby:
            self.user.write_file(signal_file, "")
        else:
            signal_file.unlink(missing_ok=True)

    @property
    def standby_configured(self) -> bool:
        return (self.data_dir / STANDBY_SIGNAL).exists()

    @property
    def exists(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    # ---- running ---------------------------------------------------------------------

    def postgres_argv(self) -> list[str]:
        """The postmaster's command line, for an agent that runs it as its own child."""
        return [str(self.pgbin["postgres"]), "-D", str(self.data_dir)]

    def spawn_postmaster(self) -> process.Child:
        """Run ``postgres -D`` as a child of this process (its own session, as the OS
        user, its output appended to the server log). The caller reaps it."""
        return self._spawn_logged(self.postgres_argv())

    def spawn_kept_postmaster(self, fence_file: Path, report_fd: int) -> process.Child:
        """Run ``postgres -D`` under a keeper (pg/keeper.py: what an agent does, so that the
        postmaster outlives it), the keeper a child of this process. The keeper writes the
        postmaster's PID to ``report_fd``; the caller reaps the keeper."""
        argv = keeper.command(sys.executable, fence_file, report_fd, self.postgres_argv())
        return self._spawn_logged(argv, pass_fds=(report_fd,))

    def _spawn_logged(self, argv: list[str], pass_fds: tuple[int, ...] = ()) -> process.Child:
        os.close(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        self.user.chown(self.log_file)
        return process.spawn_logged(
            argv,
            self.log_file,
            env=program_env(self.user),
            cwd=self.data_dir,
            pass_fds=pass_fds,
            **popen_kwargs(self.user),
        )

    def start(self, timeout: float = 60) -> None:
        """Start with ``pg_ctl start -w`` (for use without an agent)."""
        self._pg_ctl(
            "start", "-w", "-t", str(int(timeout)), "-l", str(self.log_file), timeout=timeout
        )

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        pm = self.postmaster()
        if pm is None:
            self._clear_stale_pid_file()
            return
        self._pg_ctl("stop", "-w", "-m", mode, "-t", str(int(timeout)), timeout=timeout)
        process.wait_gone(pm.pid, timeout=5)

    def restart(self, timeout: float = 60) -> None:
        self.stop(timeout=timeout)
        self.start(timeout=timeout)

    def promote(self, timeout: float = 60) -> None:
        self._pg_ctl("promote", "-w", "-t", str(int(timeout)), timeout=timeout)

    def postmaster(self) -> process.PostmasterPid | None:
        return process.running_postmaster(self.data_dir)

    @property
    def is_running(self) -> bool:
        return self.postmaster() is not None

    def wait_ready(self, timeout: float = 60, check_alive: int | None = None) -> None:
        """Wait until the server accepts connections (postmaster.pid says ready/standby).

        ``timeout`` bounds a wait without progress, not a recovery: a standby rewound or
        cloned from a busy primary of 20 GB replays WAL for minutes before it is
        consistent and takes connections (a rejoin's 60 s ran out in bench/scale.py). So
        each time the deadline comes while the server shows progress since the last one,
        the wait goes on for ``timeout`` more. Progress is the startup process replaying
        another segment (its title), or PostgreSQL's own startup progress report in its
        log since (``… elapsed time: …``, every ``log_startup_progress_interval``, 10 s:
        the data directory's sync before redo, redo itself). Other lines are not
        progress: a standby whose WAL is gone from its primary logs an error a second,
        forever — and when that error ("requested WAL segment … has already been
        removed") keeps coming for :data:`WAL_GONE_SECONDS` while the server is still not
        consistent, :class:`WalGone` is raised at once: no wait makes that WAL come back
        (a rejoin then clones instead, ops/rejoin.py)."""
        deadline = time.monotonic() + timeout
        replaying: str | None = None
        logged = self._log_size()
        gone = GoneWatch(self._log_size())
        while True:
            pm = process.read_postmaster_pid(self.data_dir)
            if pm is not None and pm.status in ("ready", "standby") and process.is_alive(pm.pid):
                return
            if check_alive is not None and not process.is_alive(check_alive):
                raise CommandFailed("postgres", 1, self.log_tail(), "see the server log")
            segment = gone.check(self.log_file, time.monotonic())
            if segment is not None:
                raise WalGone(
                    f"PostgreSQL in {self.data_dir} cannot become consistent: its upstream no "
                    f"longer has WAL segment {segment} (removed before this node streamed "
                    "it, and no archive gave it)",
                    "clone it anew (pgherd node rejoin NODE --force-clone), or keep more WAL "
                    "on the primary (a slot for this node, wal_keep_size, an archive)",
                )
            if time.monotonic() >= deadline:
                segment = process.recovering_segment(pm.pid) if pm is not None else None
                reported, logged = self._progress_logged(logged)
                advanced = segment is not None and segment != replaying
                if pm is None or not (advanced or reported):
                    break
                replaying = segment or replaying
                deadline = time.monotonic() + timeout
            time.sleep(0.05)
        stuck = f", its recovery still at {replaying}" if replaying else ""
        raise TimedOut(
            f"PostgreSQL in {self.data_dir} was not ready within {timeout:.0f} s{stuck}",
            f"see {self.log_file}",
        )

    def _log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def _progress_logged(self, since: int) -> tuple[bool, int]:
        """Whether the server logged a startup progress report after offset ``since``
        (its last 64 kB are read), and the log's size now."""
        size = self._log_size()
        if size <= since:
            return False, size
        try:
            with self.log_file.open("rb") as log:
                log.seek(max(since, size - 65536))
                return b"elapsed time:" in log.read(), size
        except OSError:
            return False, size

    def _clear_stale_pid_file(self) -> None:
        """Remove postmaster.pid left by a dead (or zombie) postmaster.

        PostgreSQL would itself ignore a pid file whose PID is gone, but a zombie PID still
        answers ``kill -0`` and makes it refuse to start ("another postmaster running?").
        """
        pm = process.read_postmaster_pid(self.data_dir)
        if pm is not None and not process.is_alive(pm.pid):
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def prepare_start(self) -> None:
        self._clear_stale_pid_file()
        self._clear_stale_socket_lock()
        self.user.make_dir(self.socket_dir)

    def _clear_stale_socket_lock(self) -> None:
        """Remove the socket's lock file left by a dead (or zombie) postmaster: PostgreSQL
        refuses to start while its PID answers ``kill -0``, which a zombie does."""
        lock = self.socket_dir / f".s.PGSQL.{self.port}.lock"
        try:
            first = lock.read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            return
        if first.lstrip("-").isdigit() and not process.is_alive(abs(int(first))):
            lock.unlink(missing_ok=True)

    def _pg_ctl(self, *args: str, timeout: float) -> None:
        if args[0] == "start":
            self.prepare_start()
        try:
            run(
                [self.pgbin["pg_ctl"], args[0], "-D", self.data_dir, *args[1:]],
                self.user,
                timeout=timeout + 10,
            )
        except CommandFailed as exc:
            tail = self.log_tail()
            raise CommandFailed(
                f"pg_ctl {args[0]}", exc.returncode, f"{exc.stderr}\n{tail}", f"see {self.log_file}"
            ) from None

    def log_tail(self, lines: int = 3) -> str:
        try:
            return last_lines(self.log_file.read_text(errors="replace"), lines)
        except OSError:
            return ""

    # ---- reading ---------------------------------------------------------------------

    def config_value(self, name: str) -> str | None:
        """A setting as the configuration files give it (``postgres -C``): works on a stopped
        data directory and beside a running server; None for a name PostgreSQL rejects."""
        done = run(
            [self.pgbin["postgres"], "-D", self.data_dir, "-C", name],
            self.user,
            timeout=30,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def controldata(self) -> controldata.ControlData:
        return controldata.read(self.pgbin, self.data_dir, self.user)

    @staticmethod
    def import_driver_meanwhile() -> None:
        """Import psycopg (~0.15 s) in a thread of its own, for a caller that will connect
        once a server it started is up: the import runs while that other process starts,
        not after. A later ``import psycopg`` waits for this one (the module's import
        lock) and a failure is raised there, where it would have been anyway."""
        threading.Thread(
            target=_import_quietly, args=("psycopg",), name="import psycopg", daemon=True
        ).start()

    def conninfo(self, dbname: str = "postgres", application_name: str = "pgherd") -> str:
        """The local socket, as the superuser; ``application_name`` tells pgherd's own
        sessions apart in pg_stat_activity (the HA loop's is ``pgherd_ha``)."""
        import psycopg  # ~0.1 s: not on the path of commands that open no connection (clone)

        return psycopg.conninfo.make_conninfo(
            host=str(self.socket_dir),
            port=self.port,
            user=self.superuser,
            dbname=dbname,
            application_name=application_name,
            connect_timeout=5,
        )

    def open(
        self, dbname: str = "postgres", application_name: str = "pgherd"
    ) -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the local socket (peer auth, mapped in pg_ident),
        in autocommit, for a caller that keeps it open (the HA loop's) and closes it."""
        import psycopg

        try:
            return psycopg.connect(self.conninfo(dbname, application_name), autocommit=True)
        except psycopg.OperationalError as exc:
            if f'database "{dbname}" does not exist' in str(exc):
                # The caller's input, not the server's state (an API request's dbname).
                raise InvalidInput(
                    f"database {dbname[:63]!r} does not exist on port {self.port}",
                    "give the name of an existing database",
                ) from None
            raise QueryFailed(
                f"cannot connect to PostgreSQL on port {self.port}: {_first_line(exc)}",
                f"is it running? see {self.log_file}",
            ) from None

    @contextlib.contextmanager
    def connect(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """:meth:`open`, closed when the block ends."""
        with self.open(dbname) as conn:
            yield conn


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _import_quietly(name: str) -> None:
    with contextlib.suppress(Exception):  # the importer that needs it sees the error
        importlib.import_module(name)
