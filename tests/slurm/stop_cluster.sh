#!/usr/bin/env bash
# Stop the test cluster that start_cluster.sh DIR started: cancel its jobs, then stop slurmd, slurmctld and
# munged by the pids start_cluster.sh recorded in DIR/pids (never by name: other SLURM daemons on the machine
# are not ours). run_slurm_test.sh calls it on exit; leaving the namespaces then ends anything left over.
set -euo pipefail

DIR=${1:?usage: stop_cluster.sh DIR}
[ -f "$DIR/pids" ] || { echo "stop_cluster.sh: no $DIR/pids: nothing to stop"; exit 0; }

if command -v scancel >/dev/null && [ -S /run/munge/munge.socket.2 ]; then
    timeout 20 scancel --full --user="$(id -un)" >/dev/null 2>&1 || true
fi
# reverse order of starting: slurmd, slurmctld, munged
mapfile -t entries < <(tac "$DIR/pids")
for entry in "${entries[@]}"; do
    read -r name pid <<<"$entry"
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop_cluster.sh: $name (pid $pid) ignored SIGTERM for 10 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
: > "$DIR/pids"
echo "SLURM test cluster stopped"
