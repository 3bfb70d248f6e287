"""Watches a cluster from a test host for the fault suite, as ``pgherd cluster show``
sees it (the same calls: every agent's status, the store's leader), and records one JSON
line per look: when, who holds the lease, and each member's role, state, upstream and
problem. The checker reads these lines to judge when the cluster settled after a fault;
the harness reads them to see whether the leader changed.

    python -m tests.faults.observer --config pgherd.yaml --out seen.jsonl --stop stop-file
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pgherd import config as config_mod
from pgherd.clients.agent import statuses
from pgherd.model import cluster as cluster_model
from pgherd.ops import ha_view
from tests.faults.checker import MemberView, Observation


def look(config: config_mod.ClusterConfig) -> Observation:
    def node_at(host: str | None, port: int | None) -> str | None:
        node = config.node_at(host, port)
        return node.name if node else None

    view = cluster_model.view(statuses(config.nodes, timeout=1.0), node_at, config.independent)
    ha = ha_view.read(config)
    assert ha is not None, "the cluster has no ha: section"
    members = tuple(
        MemberView(r.name, str(r.role) if r.role else None, r.state, r.upstream, r.problem)
        for r in view.rows
    )
    return Observation(time.time(), ha.leader if ha.store_ok else None, members)


def to_json(o: Observation) -> str:
    return json.dumps(
        {
            "at": o.at,
            "leader": o.leader,
            "members": [
                {
                    "name": m.name,
                    "role": m.role,
                    "state": m.state,
                    "upstream": m.upstream,
                    "problem": m.problem,
                }
                for m in o.members
            ],
        }
    )


def from_json(line: str) -> Observation:
    raw = json.loads(line)
    members = tuple(MemberView(**m) for m in raw["members"])
    return Observation(raw["at"], raw["leader"], members)


def read(path: Path) -> tuple[Observation, ...]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ()
    return tuple(
        from_json(line) for line in text.splitlines() if line.strip() and '"members"' in line
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    config = config_mod.load(args.config)
    with args.out.open("a") as out:
        while not args.stop.exists():
            began = time.time()
            try:
                seen = look(config)
            except Exception as exc:  # a look that failed is a gap, not the end
                out.write(json.dumps({"error": str(exc)[:200], "at": began}) + "\n")
            else:
                out.write(to_json(seen) + "\n")
            out.flush()
            time.sleep(max(0.0, args.interval - (time.time() - began)))


if __name__ == "__main__":
    main()
