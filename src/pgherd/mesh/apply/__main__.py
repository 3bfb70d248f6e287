"""``python -m pgherd.mesh.apply --config F --mesh M --source S --target T [--member C]``:
one apply worker, as the target's agent runs it (it is not a user command); ``--member``:
the member node T serves when it is a node of cluster member C (model/mesh_members.py)."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from pgherd import config as config_mod
from pgherd.errors import PgherdError
from pgherd.mesh import store
from pgherd.mesh.apply.worker import EXIT_ERROR, Worker
from pgherd.pg import process

PROCESS_NAME = b"pgherd-apply"  # what ps and /proc/PID/comm show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgherd.mesh.apply")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)  # this node
    parser.add_argument("--member")  # the member it serves, when not itself (its cluster)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s apply {args.source}->{args.target} %(levelname)s %(message)s",
    )
    process.set_process_name(PROCESS_NAME)
    # `kill -USR1 PID` writes where every thread of the worker is into its log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # If the agent dies (kill -9), its workers stop too, rather than go on applying beside
    # the workers of the agent that replaces it.
    process.stop_with_parent()
    try:
        config = config_mod.load(args.config)
        node = config.node(args.target)
        spec = store.load_spec(node, args.mesh)
        worker = Worker(
            spec,
            config,
            args.source,
            args.target,
            store.status_path(node, args.mesh, args.source),
            member=args.member,
        )
    except PgherdError as exc:
        logging.getLogger("pgherd.apply").error("%s", exc.one_line())  # noqa: TRY400
        return EXIT_ERROR

    def stop(_signum: int, _frame: FrameType | None) -> None:
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
