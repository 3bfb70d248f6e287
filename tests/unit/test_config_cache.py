"""The quick commands' config cache: used only for the very text it validated, by the
code that validated it, from a directory and files only the same user can write."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
from pathlib import Path

import pytest

from pgherd import config, config_cache
from pgherd.errors import ConfigError
from pgherd.lab import layout


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(config_cache.CACHE_DIR_ENV, str(root))
    monkeypatch.delenv(config_cache.SWITCH_ENV, raising=False)
    return root / "config"


def write_config(path: Path, cluster: str = "lab", nodes: int = 3) -> Path:
    validated = layout.lab_config(
        Path("/var/tmp/pgherd-lab"), layout.LabShape(nodes, 5440, "postgres", None)
    )
    path.write_text(config.dump(validated).replace("cluster: lab", f"cluster: {cluster}"))
    return path


def entry_of(cache: Path, path: Path) -> Path:
    return cache / f"{hashlib.sha256(path.read_bytes()).hexdigest()}.json"


def tamper(entry: Path, cluster: str) -> None:
    """Change what an entry says, to see whether the next load believes it."""
    data = json.loads(entry.read_text())
    data["config"]["cluster"] = cluster
    entry.write_text(json.dumps(data))


def test_a_validated_text_is_read_back_from_the_cache(cache: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "pgherd.yaml")
    first = config_cache.load(path)
    assert first == config.load(path).lite()
    entry = entry_of(cache, path)
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert oct(entry.stat().st_mode & 0o777) == "0o600"
    tamper(entry, "fromcache")
    assert config_cache.load(path).cluster == "fromcache"  # the cache was used


def test_an_edited_file_is_validated_again(cache: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "pgherd.yaml")
    config_cache.load(path)
    tamper(entry_of(cache, path), "stale")
    write_config(path, cluster="edited")
    assert config_cache.load(path).cluster == "edited"


def test_an_edited_file_that_became_invalid_fails_as_the_full_cli_fails(
    cache: Path, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "pgherd.yaml")
    config_cache.load(path)
    path.write_text(path.read_text().replace("name: node2", "name: Node-2"))
    with pytest.raises(ConfigError) as quick:
        config_cache.load(path)
    with pytest.raises(ConfigError) as full:
        config.load(path)
    assert quick.value.one_line() == full.value.one_line()
    assert "nodes.1.name" in quick.value.one_line()
    assert not entry_of(cache, path).exists()


def test_changed_code_makes_an_entry_stale(cache: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "pgherd.yaml")
    config_cache.load(path)
    entry = entry_of(cache, path)
    code = tmp_path / "validator.py"
    code.write_text("v1")
    data = json.loads(entry.read_text())
    info = code.stat()
    data["code"].append([str(code), info.st_size, info.st_mtime_ns, info.st_ino])
    data["config"]["cluster"] = "old"
    entry.write_text(json.dumps(data))
    assert config_cache.load(path).cluster == "old"  # nothing changed yet
    code.write_text("v2, longer")
    assert config_cache.load(path).cluster == "lab"  # validated again


def test_the_code_list_names_pgherd_and_the_validating_packages(
    cache: Path, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "pgherd.yaml")
    config_cache.load(path)
    files = [row[0] for row in json.loads(entry_of(cache, path).read_text())["code"]]
    assert config.__file__ in files
    assert config_cache.__file__ in files
    for package in ("pydantic", "pydantic_core", "yaml"):
        assert any(f.endswith(f"/{package}") for f in files), package


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        ("not UTF-8", b"cluster: \xff\xfe\n"),
        ("not YAML", b"cluster: [unclosed\n"),
        ("not a mapping", b"- a list\n"),
    ],
)
def test_unreadable_files_fail_with_the_full_clis_words(
    cache: Path, tmp_path: Path, problem: str, text: bytes
) -> None:
    path = tmp_path / "pgherd.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as quick:
        config_cache.load(path)
    with pytest.raises(ConfigError) as full:
        config.load(path)
    assert quick.value.one_line() == full.value.one_line(), problem


def test_missing_file_and_directory(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"no config file at {tmp_path}/none.yaml"):
        config_cache.load(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        config_cache.load(tmp_path)


def test_a_cache_directory_others_can_write_is_not_used(cache: Path, tmp_path: Path) -> None:
    cache.mkdir(parents=True, mode=0o700)
    cache.chmod(0o777)
    path = write_config(tmp_path / "pgherd.yaml")
    assert config_cache.load(path).cluster == "lab"
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("how", ["readable by others", "a symbolic link", "another owner"])
def test_entries_others_could_have_written_are_ignored(
    cache: Path, tmp_path: Path, how: str
) -> None:
    path = write_config(tmp_path / "pgherd.yaml")
    config_cache.load(path)
    entry = entry_of(cache, path)
    tamper(entry, "planted")
    if how == "readable by others":
        entry.chmod(0o644)
    elif how == "a symbolic link":
        planted = tmp_path / "planted.json"
        entry.rename(planted)
        entry.symlink_to(planted)
    else:
        if os.geteuid() != 0:
            pytest.skip("changing a file's owner needs root")
        nobody = pwd.getpwnam("nobody")
        os.chown(entry, nobody.pw_uid, nobody.pw_gid)
    assert config_cache.load(path).cluster == "lab"


def test_the_cache_can_be_switched_off(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config_cache.SWITCH_ENV, "off")
    path = write_config(tmp_path / "pgherd.yaml")
    assert config_cache.load(path).cluster == "lab"
    assert not cache.exists()


def test_a_relative_cache_directory_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config_cache.CACHE_DIR_ENV, "relative/cache")
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "pgherd.yaml")
    assert config_cache.load(path).cluster == "lab"
    assert not (tmp_path / "relative").exists()


def test_the_default_cache_is_in_the_effective_users_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(config_cache.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")  # sudo may keep the caller's HOME
    home = pwd.getpwuid(os.geteuid()).pw_dir
    assert config_cache.cache_root() == Path(home) / ".cache" / "pgherd"


def test_old_entries_are_pruned(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_cache, "MAX_ENTRIES", 3)
    for i in range(5):
        path = write_config(tmp_path / f"c{i}.yaml", cluster=f"c{i}")
        config_cache.load(path)
        os.utime(entry_of(cache, path), (1000.0 + i, 1000.0 + i))
    (cache / ".leftover.1.tmp").write_text("")
    os.utime(cache / ".leftover.1.tmp", (0, 0))
    path = write_config(tmp_path / "c5.yaml", cluster="c5")
    config_cache.load(path)
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 3
    assert entry_of(cache, path).name in kept
    assert entry_of(cache, tmp_path / "c4.yaml").name in kept
    assert entry_of(cache, tmp_path / "c0.yaml").name not in kept
