"""Secret files: created once, kept, replaced only when asked (credentials/files.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from pgherd import credentials
from pgherd.config import ClusterConfig
from pgherd.credentials.files import Action, init
from pgherd.errors import Refused
from pgherd.lab import layout
from pgherd.pg.osuser import OsUser

ME = OsUser("me", os.geteuid(), os.getegid(), Path("/"))


def config_in(tmp_path: Path) -> ClusterConfig:
    config = layout.lab_config(tmp_path, 1, 25440, "postgres", None)
    return config.model_copy(
        update={"passfile": tmp_path / "s" / "passfile", "api_token_file": tmp_path / "s" / "token"}
    )


class _Pair:
    """A kind with two files, as a certificate and its key are."""

    name = "pair"

    def __init__(self, base: Path) -> None:
        self.files = (base / "a.crt", base / "a.key")

    def paths(self, config: ClusterConfig) -> tuple[Path, ...]:
        return self.files

    def generate(self, config: ClusterConfig) -> Mapping[Path, str]:
        return {p: p.name for p in self.files}


def test_missing_files_are_created_and_present_ones_kept(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    first = init(config, ME, credentials.KINDS)
    # every file of every kind once, in the kinds' order (the grants after the token)
    assert list(dict.fromkeys((w.kind, w.action) for w in first)) == [
        ("passfile", Action.CREATED),
        ("API token", Action.CREATED),
        ("API credentials (viewer, nodes, grants)", Action.CREATED),
        *([("TLS (cluster CA and member certificates)", Action.CREATED)] if config.tls_on else []),
    ]
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    token = config.api_token_file.read_text()
    config.passfile.unlink()
    second = init(config, ME, credentials.KINDS)
    assert [(w.kind, w.action) for w in second[:2]] == [
        ("passfile", Action.CREATED),
        ("API token", Action.KEPT),
    ]
    assert {w.action for w in second[2:]} == {Action.KEPT}
    assert config.api_token_file.read_text() == token
    forced = init(config, ME, credentials.KINDS, force=True)
    assert {w.action for w in forced} == {Action.REPLACED}
    assert config.api_token_file.read_text() != token


def test_a_kind_with_half_its_files_is_refused(tmp_path: Path) -> None:
    pair = _Pair(tmp_path)
    pair.files[0].write_text("only the certificate")
    with pytest.raises(Refused, match=r"pair: .*a\.crt exists but .*a\.key does not"):
        init(config_in(tmp_path), ME, [pair])
    assert not pair.files[1].exists()
    written = init(config_in(tmp_path), ME, [pair], force=True)
    assert [w.action for w in written] == [Action.REPLACED, Action.CREATED]
