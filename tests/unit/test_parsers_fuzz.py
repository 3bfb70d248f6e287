"""Property-based tests (hypothesis) of the parsers that read bytes and text from outside:
the pgoutput decoder, the config loader, WAL file names and LSNs.

The property is the same for each: any input either parses into a value that survives a
round trip, or is refused with the parser's own error (ProtocolError, ConfigError,
ValueError) — never another exception, which would be a traceback in an agent's log or
a crashed apply worker. Bounded: ``max_examples`` per test keeps the module near 5 s.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgherd import config as config_mod
from pgherd.errors import ConfigError
from pgherd.mesh.apply import pgoutput as po
from pgherd.model import wal
from pgherd.model.lsn import Lsn
from tests.unit import pgoutput_capture as cap

BOUNDED = settings(
    max_examples=300, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip

CAPTURED = [bytes.fromhex(h) for _, h in [*cap.BINARY, *cap.TEXT]]
TAGS = b"BCORYIUDTMSEcAbPpKr"


@st.composite
def pgoutput_like(draw: st.DrawFn) -> bytes:
    """Captured messages cut, grown and bit-flipped, and random bytes behind a known tag:
    closer to what a broken stream sends than uniform noise."""
    base = bytearray(draw(st.sampled_from(CAPTURED)))
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return bytes(base[: draw(st.integers(0, len(base)))])
    if choice == 1:
        return bytes(base) + draw(st.binary(min_size=1, max_size=16))
    if choice == 2:
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(base) - 1))
            base[at] = draw(st.integers(0, 255))
        return bytes(base)
    return bytes([draw(st.sampled_from(TAGS))]) + draw(st.binary(max_size=64))


@BOUNDED
@given(payload=pgoutput_like(), in_stream=st.booleans())
@example(payload=b"I\x00\x00\x00\x03N\x00\x01b\x7f\xff\xff\xff", in_stream=False)
def test_decode_returns_a_message_or_a_protocol_error(payload: bytes, in_stream: bool) -> None:
    with contextlib.suppress(po.ProtocolError):
        po.decode(payload, in_stream)


@BOUNDED
@given(payload=pgoutput_like())
@example(payload=b"I\x00\x00\x00\x03N")
@example(payload=b"I\x00\x00\x00\x03N\x00\x02b\x00\x00\x00\x09ab")
def test_the_insert_fast_path_never_crashes(payload: bytes) -> None:
    if payload[:1] != b"I":
        payload = b"I" + payload[1:]
    try:
        row = po.copy_row(payload)
    except po.ProtocolError:
        return
    if row is not None:  # a spliced row holds the column count and a length per column
        assert struct.unpack_from(">h", row)[0] >= 0


@BOUNDED
@given(payload=st.binary(max_size=64), pos=st.integers(0, 70))
def test_binary_values_never_crash(payload: bytes, pos: int) -> None:
    with contextlib.suppress(po.ProtocolError):
        po.binary_values(payload, pos)


# ---- LSNs and WAL file names ---------------------------------------------------------


@BOUNDED
@given(value=st.integers(0, 2**64 - 1))
def test_lsn_text_round_trips(value: int) -> None:
    assert Lsn.parse(str(Lsn(value))).value == value


@BOUNDED
@given(text=st.text(max_size=40))
@example(text="FFFFFFFF/FFFFFFFF")
@example(text="0/0\n")
@example(text="１/２")  # full-width digits: isdigit() says yes, hex says no
def test_lsn_parse_takes_only_lsns(text: str) -> None:
    try:
        lsn = Lsn.parse(text)
    except ValueError:
        return
    assert Lsn.parse(str(lsn)) == lsn
    assert str(lsn).count("/") == 1


@BOUNDED
@given(timeline=st.integers(1, 2**32 - 1), number=st.integers(0, 2**40))
def test_segment_names_round_trip(timeline: int, number: int) -> None:
    size = wal.DEFAULT_SEGMENT_SIZE
    number %= 0x100000000 * wal.segments_per_id(size)
    segment = wal.Segment(number, timeline)
    parsed = wal.parse_name(segment.name(size), size)
    assert parsed.segment == segment


@BOUNDED
@given(name=st.text(max_size=40))
@example(name="../../etc/passwd")
@example(name="000000010000000000000001/..")
@example(name="00000001.history\n")
@example(name="000000010000000100000100")  # segment number past the last of a 16 MB id
def test_wal_names_are_parsed_or_refused(name: str) -> None:
    try:
        parsed = wal.parse_name(name)
    except ValueError:
        assert not wal.is_wal_name(name)
        return
    assert "/" not in parsed.name and parsed.name == name
    assert wal.is_wal_name(name)


# ---- the config loader ---------------------------------------------------------------

MINIMAL: dict[str, Any] = {
    "cluster": "c",
    "passfile": "/var/tmp/c/pgpass",
    "api_token_file": "/var/tmp/c/token",
    "nodes": [{"name": "node1", "data_dir": "/var/tmp/c/node1/data"}],
}
KEYS = ["cluster", "nodes", "ha", "ttl", "port", "name", "data_dir", "settings", "api", "x"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=12,
)


@BOUNDED
@given(raw=values)
def test_any_yaml_value_loads_or_is_a_config_error(raw: Any) -> None:
    try:
        config_mod.parse(raw)
    except ConfigError as exc:
        message = exc.one_line()
    else:
        return
    assert "\n" not in message


@BOUNDED
@given(path=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3), value=values)
def test_a_minimal_config_with_one_value_replaced(path: list[str], value: Any) -> None:
    raw: Any = {**MINIMAL, "nodes": [dict(MINIMAL["nodes"][0])]}
    target = raw
    for key in path[:-1]:
        nxt = target.get(key) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            target[key] = nxt
        target = nxt
    target[path[-1]] = value
    try:
        loaded = config_mod.parse(raw)
    except ConfigError:
        return
    assert config_mod.parse(yaml.safe_load(config_mod.dump(loaded))) == loaded


@BOUNDED
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
@example(text="a: !!python/object/apply:os.system ['true']")
@example(text="&a [*a]")
@example(text="x: 1e308\n")
def test_any_file_loads_or_is_a_config_error(text: str) -> None:
    path = Path("/var/tmp") / f"pgherd-fuzz-config-{os.getpid()}.yaml"
    try:
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return
    try:
        config_mod.load(path)
    except ConfigError as exc:
        message = exc.one_line()
    else:
        return
    finally:
        path.unlink(missing_ok=True)
    assert "\n" not in message
