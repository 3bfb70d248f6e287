"""The WAL archive, base backups and point-in-time recovery.

``pgherd wal push`` and ``pgherd wal fetch`` run as PostgreSQL's archive_command and
restore_command, as the PostgreSQL OS user, once per segment: they import only
:mod:`pgherd.archive.walcmd` and what it needs (no Typer, no pydantic) to start fast.
"""
