"""Wheels of pgherd's dependencies, packed from the distributions installed in the
project's virtualenv, so that a test can install the pgherd wheel into a fresh virtualenv
with ``pip install --no-index --find-links`` — no network, no download.

Each installed distribution's RECORD lists its files; the files under site-packages and
its ``.dist-info`` (with a new RECORD) are zipped back into a wheel named with the tag of
its WHEEL file. Scripts (``../../bin``) are left out: pip writes console scripts again from
``entry_points.txt``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def closure(root: str, extras: tuple[str, ...] = ()) -> list[metadata.Distribution]:
    """``root``'s installed distribution and everything it requires (markers evaluated
    for this interpreter), each once."""
    seen: dict[str, metadata.Distribution] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        dist = metadata.distribution(name)
        key = _normalize(dist.metadata["Name"])
        first = key not in seen
        seen[key] = dist
        for line in dist.requires or ():
            req = Requirement(line)
            environments = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in environments):
                continue
            if first or req.extras:
                todo.append((req.name, tuple(req.extras)))
    return [seen[k] for k in sorted(seen)]


def repack(dist: metadata.Distribution, into: Path) -> Path:
    """Write ``dist`` (installed from a wheel) back into a wheel file in ``into``."""
    files = [f for f in dist.files or () if not str(f).startswith("..")]
    files = [f for f in files if "__pycache__" not in f.parts and not str(f).endswith(".pyc")]
    info = next(f for f in files if f.parts[0].endswith(".dist-info"))
    info_dir = info.parts[0]
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    if not tags:
        raise ValueError(f"{dist.metadata['Name']} was not installed from a wheel (no WHEEL tag)")
    name = _normalize(dist.metadata["Name"]).replace("-", "_")
    target = into / f"{name}-{dist.version}-{_compress(tags)}.whl"
    record_name = f"{info_dir}/RECORD"
    rows = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as wheel:
        for file in files:
            arcname = str(file)
            if arcname in (record_name, f"{info_dir}/INSTALLER", f"{info_dir}/REQUESTED"):
                continue
            if arcname.startswith(f"{info_dir}/direct_url.json"):
                continue
            data = Path(str(dist.locate_file(file))).read_bytes()
            wheel.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.append(f"{arcname},sha256={digest.decode()},{len(data)}")
        rows.append(f"{record_name},,")
        wheel.writestr(record_name, "\n".join(rows) + "\n")
    return target


def build(root: str, into: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """Wheels of what ``root`` needs at run time (not ``root`` itself, nor ``skip``)."""
    into.mkdir(parents=True, exist_ok=True)
    drop = {_normalize(root), *(_normalize(s) for s in skip)}
    return [repack(d, into) for d in closure(root) if _normalize(d.metadata["Name"]) not in drop]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _compress(tags: list[str]) -> str:
    """``py3-none-any`` from one tag; several tags as compressed sets (PEP 425)."""
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))
