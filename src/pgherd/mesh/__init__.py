"""Multi-master meshes: the agent's side (spec files, workers, SQL on its node) and the
CLI's side (create, add-node, status, verify, conflicts, drop through the agents)."""
