#!/usr/bin/env bash
# A 3-node lab cluster (one primary, two streaming standbys) on this machine, and a short
# demo: a row written on the primary is read back on both standbys.
# Usage: scripts/demo.sh [DIR]   (default DIR: /var/tmp/pgherd-demo)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/bootstrap.sh")
dir=${1:-/var/tmp/pgherd-demo}
pgherd="$venv/bin/pgherd"
export PGHERD_CONFIG="$dir/pgherd.yaml"

"$pgherd" lab up --dir "$dir" --nodes 3
echo
echo "== a row written on the primary..."
note="written on node1 at $(date +%T)"
psql -X -q "$("$pgherd" connstr node1)" -v note="$note" <<'SQL'
CREATE TABLE IF NOT EXISTS demo (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL);
INSERT INTO demo (note) VALUES (:'note');
SQL
echo "   wrote: $note"
for node in node2 node3; do
    for _ in $(seq 50); do
        got=$(psql -X -At "$("$pgherd" connstr "$node")" -c "SELECT note FROM demo ORDER BY id DESC LIMIT 1" 2>/dev/null || true)
        [ "$got" = "$note" ] && break
        sleep 0.1
    done
    echo "   ...read on $node: ${got:-<not yet replicated>}"
done
echo
echo "== the cluster"
"$pgherd" cluster show
cat <<TXT

The cluster keeps running. Try:
  export PGHERD_CONFIG=$dir/pgherd.yaml
  ./pgherd cluster show
  ./pgherd node stop node2 && ./pgherd cluster show; ./pgherd node start node2
  pkill -9 -f 'agent run --node node1 '; sleep 5; ./pgherd cluster show   # automatic failover
  ./pgherd lab up --dir $dir; ./pgherd cluster events                     # node1 rejoins
  ./pgherd doctor
  ./pgherd lab down --dir $dir --purge
TXT
