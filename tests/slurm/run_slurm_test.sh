#!/usr/bin/env bash
# The SLURM test (`make test-slurm`): a real single-node SLURM on localhost runs the demo workflow through the
# shipped profile, and its packaged dataset must equal a local run's.
#
#   tests/slurm/run_slurm_test.sh           run the test (root; installs SLURM and munge with apt if missing)
#   tests/slurm/run_slurm_test.sh --shell   an interactive shell with the test cluster up; exit to tear it down
#
# 1. start_cluster.sh: munged + slurmctld + slurmd with one fake GPU, in private mount/network/PID/UTS
#    namespaces, so nothing of the host's SLURM, munge or ports is touched, and every process of the test
#    ends with it (on exit, error, timeout or kill).
# 2. configs/demo.yaml + tests/slurm/demo-fast.yaml with `--profile profiles/slurm` (the real profile,
#    unchanged) `--workflow-profile tests/slurm/profile` (the test cluster's squeue polling etc.).
# 3. No sampler process may outlive the SLURM jobs.
# 4. The same config with `--profile profiles/local`.
# 5. check_runs.py: every job was a completed SLURM job, only sampling and evaluation got the GPU, the
#    5 classes were one submission served by one model load that ended with its job step, and both runs'
#    packaged datasets (distilled.pt tensors, manifest.csv with its sha256s, every PNG) are identical.
#
# Env: SLURM_TEST_DIR (work dir, kept; default a new /tmp/gendistill-slurm.XXXXXX, removed after a pass
# unless KEEP_SLURM_TEST=1), SLURM_TEST_TIMEOUT (seconds for everything, default 900), GENDISTILL_VENV (default .venv).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VENV=${GENDISTILL_VENV:-$REPO/.venv}
MODE=${1:-test}
case "$MODE" in test|--shell) ;; *) echo "usage: $0 [--shell]" >&2; exit 2 ;; esac

if [ "${GENDISTILL_SLURM_NS:-}" != 1 ]; then
    # ---- outside: check, install, then re-enter this script in private namespaces ----
    if [ "$(id -u)" -ne 0 ]; then
        echo "run_slurm_test.sh: needs root (installs slurmctld/slurmd/munge with apt, runs the daemons)" >&2
        exit 2
    fi
    if ! "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('snakemake_executor_plugin_slurm') is None)"; then
        echo "run_slurm_test.sh: snakemake-executor-plugin-slurm is not installed in $VENV;" \
             "run 'make test-slurm' or '$VENV/bin/pip install -e \".[slurm]\"'" >&2
        exit 2
    fi
    need=()
    for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null || need=(slurmctld slurmd slurm-client munge); done
    command -v ip >/dev/null || need+=(iproute2)
    command -v setpriv >/dev/null || need+=(util-linux)
    if [ ${#need[@]} -gt 0 ]; then
        command -v apt-get >/dev/null || { echo "run_slurm_test.sh: needs ${need[*]} and there is no apt-get" >&2; exit 2; }
        echo "== installing ${need[*]} (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    if [ -n "${SLURM_TEST_DIR:-}" ]; then
        WORK=$SLURM_TEST_DIR
        KEEP_SLURM_TEST=1  # a directory you named is yours: never removed
    else
        WORK=$(mktemp -d /tmp/gendistill-slurm.XXXXXX)
    fi
    mkdir -p "$WORK"
    export GENDISTILL_SLURM_NS=1 SLURM_TEST_DIR=$WORK
    # --kill-child: if this script is killed or times out, the namespace's first process gets SIGKILL, and the
    # kernel then kills every process in the namespace (daemons, jobs, sampler processes).
    set +e
    timeout --kill-after=20 "${SLURM_TEST_TIMEOUT:-900}" \
        unshare --mount --net --pid --fork --kill-child --mount-proc --uts bash "$0" "$MODE"
    rc=$?
    set -e
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "run_slurm_test.sh: timed out after ${SLURM_TEST_TIMEOUT:-900} s; logs in $WORK" >&2
    elif [ $rc -eq 0 ] && [ "$MODE" = test ] && [ "${KEEP_SLURM_TEST:-0}" != 1 ]; then
        rm -rf "$WORK"
    elif [ "$MODE" = --shell ]; then
        echo "run_slurm_test.sh: the cluster's files and logs are kept in $WORK"
    elif [ $rc -ne 0 ]; then
        echo "run_slurm_test.sh: FAILED (exit $rc); logs and both runs in $WORK" >&2
    fi
    exit $rc
fi

# ---- inside the namespaces ----
WORK=$SLURM_TEST_DIR
hostname gendistill-node
ip link set lo up
# slurmctld/slurmd bind with getaddrinfo(AI_ADDRCONFIG), which finds nothing while the only IPv4 addresses are
# loopback ones: give the private loopback one documentation-range (RFC 5737) address as well.
ip addr add 192.0.2.1/32 dev lo
trap 'bash "$HERE/stop_cluster.sh" "$WORK/cluster"' EXIT
t_start=$SECONDS
bash "$HERE/start_cluster.sh" "$WORK/cluster"
echo "   cluster started in $((SECONDS - t_start)) s"

if [ "$MODE" = --shell ]; then
    echo "== a shell on the test cluster (sinfo, squeue, sbatch ...); exit to tear it down"
    bash -i || true
    exit 0
fi

# the runs' temp and runtime dirs (sampler sockets among others) are the test's own, removed with it
export TMPDIR=$WORK/tmp XDG_RUNTIME_DIR=$WORK/xdg
mkdir -p "$TMPDIR"
mkdir -m 700 -p "$XDG_RUNTIME_DIR"
SM=("$VENV/bin/snakemake" -s "$REPO/Snakefile" --configfile "$REPO/configs/demo.yaml" "$HERE/demo-fast.yaml")

samplers() {  # sampler processes alive in this namespace (every process here belongs to the test)
    local p
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q 'gendistill sampler-serve'; then
            echo "pid ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline" | cut -c1-160)"
        fi
    done
}

echo "== 1/3 demo through SLURM: --profile profiles/slurm --workflow-profile tests/slurm/profile"
t0=$SECONDS
if ! timeout "${SLURM_RUN_TIMEOUT:-480}" "${SM[@]}" --directory "$WORK/slurm" --profile "$REPO/profiles/slurm" \
        --workflow-profile "$HERE/profile" >"$WORK/slurm.log" 2>&1; then
    tail -n 60 "$WORK/slurm.log"
    echo "-- squeue (jobs left, with the reason they wait):"; squeue -o "%i %j %T %r %b %C %m" || true
    echo "-- SLURM job logs:"; tail -n 40 "$WORK"/slurm/.snakemake/slurm_logs/*/*.log 2>/dev/null | tail -n 120 || true
    echo "run_slurm_test.sh: the SLURM run failed" >&2
    exit 1
fi
echo "   done in $((SECONDS - t0)) s ($(grep -c "submitted with SLURM jobid" "$WORK/slurm.log" || true) submissions)"
scontrol -o show job >"$WORK/jobs.txt"
for _ in $(seq 1 10); do [ -z "$(samplers)" ] && break; sleep 1; done
samplers >"$WORK/samplers_after_slurm.txt"

echo "== 2/3 the same config locally: --profile profiles/local"
t0=$SECONDS
if ! timeout 480 "${SM[@]}" --directory "$WORK/local" --profile "$REPO/profiles/local" >"$WORK/local.log" 2>&1; then
    tail -n 60 "$WORK/local.log"
    echo "run_slurm_test.sh: the local run failed" >&2
    exit 1
fi
echo "   done in $((SECONDS - t0)) s"

echo "== 3/3 checks"
"$VENV/bin/python" "$HERE/check_runs.py" "$WORK"
echo "SLURM test passed in $((SECONDS - t_start)) s"
