"""The mesh's long fault run: a mesh of three primaries while every member writes, kill -9
of four apply workers mid-stream, then one member down for a minute while the other two
write on; it must come back and converge with nothing lost and nothing applied twice.

tests/e2e/test_mesh.py runs the same scenario (``tests/e2e/mesh_support.member_down``) as
its bounded form, with the member down 10 s; this is the long form, kept out of the suite's
time budget. The nodes are three independent primaries with their agents (as the test's),
shared by the runs; each run makes its own mesh and drops it.

    $VENV/bin/python -m bench.mesh_faults                          # a minute down, 3 runs
    $VENV/bin/python -m bench.mesh_faults --down-seconds 10 --runs 1

Per run: how long the member was down, the transactions each writer committed, the
seconds from the writers' stop to every pair's worker running and to a clean ``mesh
verify``, and the verdict: every member holds exactly the rows the writers committed, and
no conflict was recorded (a transaction applied twice meets its own rows: an
insert_exists conflict). No other tool runs beside it: PostgreSQL 15's own logical
replication cannot make a mesh (it cannot filter changes by origin), so the figure is the
verdict, and the time to converge is its cost.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tests.e2e.mesh_support import (
    Nodes,
    conflicts,
    drop,
    expected_state,
    member_down,
    table_state,
    three_primaries,
)

from bench import common
from pgherd.pg import osuser

DIRECTORY = Path("/var/tmp/pgherd-bench-mesh-faults")
MEMBERS = ("node1", "node2", "node3")


def one_run(nodes: Nodes, run: int, down_seconds: float) -> dict[str, Any]:
    mesh = f"faults{run}"
    row: dict[str, Any] = {"run": run, "down_seconds": down_seconds}
    try:
        seen = member_down(nodes, mesh, down_seconds)
    except AssertionError as exc:  # did not converge (or a worker never came back)
        row |= {"verdict": "FAILED", "violations": [str(exc)]}
        return row
    expected = expected_state(seen.writers)
    found = {node: table_state(nodes, node, mesh) for node in MEMBERS}
    recorded = conflicts(nodes, mesh)
    violations = [
        f"{node} holds {rows} (rows, sum), the writers committed {expected}"
        for node, rows in found.items()
        if rows != expected
    ]
    if recorded:
        violations.append(f"{len(recorded)} conflicts recorded: {recorded[:3]}")
    drop(nodes, mesh)
    row |= {
        "verdict": "ok" if not violations else "FAILED",
        "violations": violations,
        "workers_killed": seen.workers_killed,
        "transactions": {
            f"{w.node}{'' if i < 3 else ' (after)'}": w.transactions
            for i, w in enumerate(seen.writers)
        },
        "rows": expected[0],
        "running_seconds": round(seen.running_seconds, 1),
        "converged_seconds": round(seen.converged_seconds, 1),
        "conflicts": len(recorded),
    }
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--down-seconds", type=float, default=60, help="how long node3 stays down (default 60)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--directory", type=Path, default=DIRECTORY)
    args = parser.parse_args(argv)
    common.become_subreaper()
    started = common.now()
    header = common.result_header(
        "mesh_faults", started, {"down_seconds": args.down_seconds, "runs": args.runs}
    )
    user = osuser.resolve(common.OS_USER)
    runs: list[dict[str, Any]] = []
    with common.fresh_directory(args.directory) as directory:
        user.make_dir(directory)
        with three_primaries(directory, user) as nodes:
            for run in range(args.runs):
                runs.append(one_run(nodes, run, args.down_seconds))
                common.console.print(f"  run {run}: {runs[-1]}", soft_wrap=True)
    common.reap()
    common.print_table(
        f"a mesh of three: kill -9 of 4 workers, then node3 down {args.down_seconds:g} s "
        "under writes",
        [
            "run",
            "verdict",
            "rows",
            "txns node1/2/3/3 after",
            "workers running (s)",
            "converged (s)",
        ],
        [
            [
                r["run"],
                r["verdict"],
                r.get("rows"),
                "/".join(str(n) for n in r.get("transactions", {}).values()),
                r.get("running_seconds"),
                r.get("converged_seconds"),
            ]
            for r in runs
        ],
    )
    for r in runs:
        for violation in r["violations"]:
            common.console.print(f"run {r['run']}: {violation}", soft_wrap=True)
    path = common.write_json(
        "mesh_faults",
        header
        | {
            "runs": runs,
            "converged_seconds": common.summary(
                [r["converged_seconds"] for r in runs if "converged_seconds" in r]
            ),
            "load_average_end": common.load_average(),
            "finished": common.now().isoformat(timespec="seconds"),
        },
        started,
    )
    common.console.print(f"wrote {path}")
    return 0 if all(r["verdict"] == "ok" for r in runs) else 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
