#!/usr/bin/env bash
# Stop the one-machine SLURM cluster that start.sh started from $PAE_SLURM_DIR (default /tmp/pae-slurm).
# Cancels the jobs still queued or running, then sends SIGTERM to each daemon by its pidfile in reverse start order
# (slurmds, slurmctld, slurmdbd, MariaDB, munged if start.sh started it), waits for it to exit and sends SIGKILL
# after PAE_SLURM_STOP_TIMEOUT seconds (default 20). Leftover job step daemons (slurmstepd) of this cluster are killed.
# Idempotent: nothing running, nothing to do. The scratch folder is kept: start.sh resumes from it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"

STOP_TIMEOUT=${PAE_SLURM_STOP_TIMEOUT:-20}
T0=$(now)
log() { echo "[stop $(elapsed "$T0")s] $*"; }

require_root stop
export SLURM_CONF=$SLURM_CONF_FILE

if [[ ! -d $D ]]; then
    log "nothing to stop: $D does not exist"
    exit 0
fi

# Jobs first, while slurmctld can still clean them up (their processes would otherwise outlive the slurmds).
if alive "$(pidfile_slurmctld)" slurmctld && timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        log "cancelling jobs: ${jobs//$'\n'/ }"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        deadline=$(( $(date +%s) + 15 ))
        while [[ -n $(timeout 5 squeue -h -t R,CG,PD -o %i 2>/dev/null || true) ]] && (( $(date +%s) < deadline )); do
            sleep 0.5
        done
    fi
fi

# stop_one PIDFILE COMM: SIGTERM, wait, SIGKILL
stop_one() {
    local pidfile=$1 comm=$2 name pid t0
    name=$(basename "$pidfile" .pid)
    if ! alive "$pidfile" "$comm"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(pid_of "$pidfile")
    [[ -n $pid ]] || return 0
    t0=$(now)
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(( $(date +%s) + STOP_TIMEOUT ))
    while pid_alive "$pid" "$comm"; do
        if (( $(date +%s) >= deadline )); then
            log "$name (pid $pid) still running after ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    rm -f "$pidfile"
    log "$name (pid $pid) stopped ($(elapsed "$t0")s)"
    stopped=$((stopped + 1))
}

stopped=0
mapfile -t all < <(daemons)
for ((i = ${#all[@]} - 1; i >= 0; i--)); do
    read -r pf comm <<<"${all[i]}"
    stop_one "$pf" "$comm"
done

# Job step daemons of this cluster that outlived their slurmd (identified by our SLURM_CONF in their environment).
for pid in $(pgrep -x slurmstepd || true); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF_FILE"; then
        log "killing leftover slurmstepd (pid $pid)"
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

if [[ $stopped -eq 0 ]]; then
    log "nothing was running (PAE_SLURM_DIR=$D)"
else
    echo "[stop] $stopped daemons stopped in $(elapsed "$T0")s"
fi
