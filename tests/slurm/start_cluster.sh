#!/usr/bin/env bash
# Start a single-node SLURM cluster (munged, slurmctld, slurmd) for tests/slurm/run_slurm_test.sh.
#
#   usage: start_cluster.sh DIR        (root, inside the private namespaces run_slurm_test.sh creates)
#
# The cluster never touches the host's SLURM or munge: run_slurm_test.sh runs this in private mount, network,
# PID and UTS namespaces, where DIR/etc is mounted over /etc/slurm and DIR/munge over /run/munge, the network
# is a private loopback (no port clashes with a real slurmctld) and every daemon ends with the namespace.
#
# What the test cluster is (measured recipe: docs/design/slurm-localhost.md):
# - no cgroups, no accounting database: proctrack/linuxproc, task/none, accounting_storage/none. The executor
#   plugin therefore polls squeue (tests/slurm/profile/config.yaml), which needs MinJobAge well above the
#   plugin's first status check.
# - one node with one fake GPU (gres File=/dev/null): `--gpus=1` / `--gres=gpu:1` requests are really
#   scheduled, one at a time, and the job gets CUDA_VISIBLE_DEVICES=0 (torch finds no GPU and uses the CPU).
# - the node declares at least 32 GB and 2 CPUs (config_overrides: not checked against the hardware, and not
#   enforced without cgroups) so the real profile's requests (profiles/slurm) fit unchanged.
# Daemon pids go to DIR/pids; stop_cluster.sh DIR stops them.
set -euo pipefail

DIR=${1:?usage: start_cluster.sh DIR}
if [ "${GENDISTILL_SLURM_NS:-}" != 1 ]; then
    echo "start_cluster.sh: run it through tests/slurm/run_slurm_test.sh (it needs the private namespaces that" \
         "keep the test cluster off the host's /etc/slurm, munge and ports); for a shell with the cluster up:" \
         "tests/slurm/run_slurm_test.sh --shell" >&2
    exit 2
fi
for cmd in munged slurmctld slurmd sbatch squeue scontrol sinfo setpriv; do
    command -v "$cmd" >/dev/null || { echo "start_cluster.sh: $cmd not found (run_slurm_test.sh installs it)" >&2; exit 2; }
done
[ -r /etc/munge/munge.key ] || { echo "start_cluster.sh: /etc/munge/munge.key missing (reinstall munge)" >&2; exit 2; }

mkdir -p "$DIR"/{etc,munge,ctld,spool,log}
: > "$DIR/pids"
chmod 0755 "$DIR" "$(dirname "$DIR")"  # munged (user munge) checks every directory on its paths
chown munge:munge "$DIR/munge"
chmod 0755 "$DIR/munge"
NODE=$(hostname -s)
{ cat /etc/hosts; echo "127.0.0.1 $NODE"; } > "$DIR/hosts"  # the node's name resolves without DNS
mkdir -p /etc/slurm /run/munge
mount --bind "$DIR/hosts" /etc/hosts
mount --bind "$DIR/etc" /etc/slurm
mount --bind "$DIR/munge" /run/munge

CPUS=$(nproc)
(( CPUS < 2 )) && CPUS=2
MEM=$(awk '/^MemTotal:/ {print int($2 / 1024) - 1024}' /proc/meminfo)
(( MEM < 32000 )) && MEM=32000
cat > /etc/slurm/slurm.conf <<CONF
# gendistill test cluster (tests/slurm/start_cluster.sh): one node on a private loopback.
ClusterName=gendistill-test
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
GresTypes=gpu
DefMemPerCPU=1000
MinJobAge=1800
ReturnToService=2
SlurmdParameters=config_overrides
SlurmdTimeout=60
MessageTimeout=30
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
CONF
cat > /etc/slurm/gres.conf <<CONF
AutoDetect=off
NodeName=${NODE} Name=gpu File=/dev/null Count=1
CONF

setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
    --seed-file="$DIR/munge/munged.seed" --log-file="$DIR/munge/munged.log" >"$DIR/log/munged.out" 2>&1 &
echo "munged $!" >> "$DIR/pids"
for _ in $(seq 1 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
[ -S /run/munge/munge.socket.2 ] || { echo "start_cluster.sh: munged did not start:" >&2; cat "$DIR/log/munged.out" "$DIR/munge/munged.log" >&2 || true; exit 1; }

slurmctld -D -c >"$DIR/log/slurmctld.out" 2>&1 &
echo "slurmctld $!" >> "$DIR/pids"
slurmd -D -c >"$DIR/log/slurmd.out" 2>&1 &
echo "slurmd $!" >> "$DIR/pids"

deadline=$((SECONDS + 60))
while (( SECONDS < deadline )); do
    while read -r name pid; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "start_cluster.sh: $name exited while starting:" >&2
            tail -n 30 "$DIR/log/$name.out" >&2 || true
            exit 1
        fi
    done <"$DIR/pids"
    if [ "$(timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ]; then
        echo "SLURM test cluster up: node $NODE, $CPUS CPUs, ${MEM} MB declared, 1 fake GPU ($(sinfo -h -o '%P %G'))"
        exit 0
    fi
    sleep 1
done
echo "start_cluster.sh: node $NODE did not become idle within 60 s" >&2
timeout 5 sinfo -N -l >&2 || true
tail -n 30 "$DIR"/log/*.log "$DIR"/log/*.out >&2 || true
exit 1
