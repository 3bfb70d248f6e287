"""``pgherd agent run`` with a clock of its own: the agent reads time through
:class:`pgherd.ha.clock.Clock`, and this one adds the offsets a small file holds to the
machine's clocks, so that a test can make one agent's clock jump while every test host
shares the machine's (the fault suite's clock faults).

    python skewed_agent.py --offsets FILE --node NODE --config pgherd.yaml

FILE holds two numbers, ``MONOTONIC WALL``, in seconds (absent or unreadable: 0 0); it
is read again whenever it changes. The script imports nothing but pgherd and the
standard library: the fault suite copies it where the PostgreSQL OS user can read it and
runs it as that user, as the unit runs the agent.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from pgherd.ha import agent


class FileClock:
    """The machine's clocks plus the offsets in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: int | None = None
        self._offsets = (0.0, 0.0)

    def _read(self) -> tuple[float, float]:
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except OSError:
            return (0.0, 0.0)
        if stamp != self._stamp:
            try:
                mono, wall = (float(x) for x in self.path.read_text().split()[:2])
            except (OSError, ValueError):
                mono, wall = 0.0, 0.0
            self._stamp, self._offsets = stamp, (mono, wall)
        return self._offsets

    def monotonic(self) -> float:
        return time.monotonic() + self._read()[0]

    def time(self) -> float:
        return time.time() + self._read()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offsets", type=Path, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    agent.run(args.config, args.node, FileClock(args.offsets))


if __name__ == "__main__":
    main()
