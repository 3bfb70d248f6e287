"""Slot state files: read from a primary's data directory, installed into a standby's."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pgherd.errors import InvalidInput, Refused
from pgherd.pg import osuser, slot_files


def test_states_are_installed_whole_and_replace_a_slot_of_that_name(tmp_path: Path) -> None:
    user = osuser.resolve("postgres")
    (tmp_path / "standby.signal").touch()
    (tmp_path / "pg_replslot" / "old").mkdir(parents=True)
    (tmp_path / "pg_replslot" / "old" / "state").write_bytes(b"stale")
    slot_files.install_states(tmp_path, user, {"old": b"fresh", "new": b"\x00\x01state"})
    assert slot_files.read_state(tmp_path, "old") == b"fresh"
    assert slot_files.read_state(tmp_path, "new") == b"\x00\x01state"
    assert sorted(p.name for p in (tmp_path / "pg_replslot").iterdir()) == ["new", "old"]
    state = tmp_path / "pg_replslot" / "new" / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert state.stat().st_uid == user.uid


def test_a_bad_name_or_a_missing_slot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a slot name"):
        slot_files.read_state(tmp_path, "../../etc")
    with pytest.raises(Refused, match="no slot sub here"):
        slot_files.read_state(tmp_path, "sub")


def test_a_primarys_data_directory_gets_no_copies(tmp_path: Path) -> None:
    (tmp_path / "pg_replslot").mkdir()
    with pytest.raises(Refused, match="no longer a standby's"):
        slot_files.install_states(tmp_path, osuser.resolve("postgres"), {"sub": b"x"})
    assert list((tmp_path / "pg_replslot").iterdir()) == []
