"""The Unix socket length rule, which config.py and pgherd restore both apply."""

from __future__ import annotations

import pytest

from pgherd.model.sockets import socket_dir_fits


@pytest.mark.parametrize(
    ("length", "fits"),
    [(1, True), (92, True), (93, False), (200, False)],
)
def test_the_socket_path_fits_in_107_bytes(length: int, fits: bool) -> None:
    directory = "/" + "d" * (length - 1)  # 92 + len("/.s.PGSQL.65535") == 107
    assert socket_dir_fits(directory) is fits


def test_bytes_count_not_characters() -> None:
    assert socket_dir_fits("/" + "d" * 91)
    assert not socket_dir_fits("/" + "é" * 46)  # 93 bytes in UTF-8
