#!/usr/bin/env bash
# Start a real one-machine SLURM 22.05 cluster with accounting: munge, MariaDB, slurmdbd, slurmctld and three slurmds
# (the machine's own node in partition `debug`, plus n1 and n2 emulated on 127.0.0.1:17001/17002 in partition `multi`).
# Configs, state, spool, pids, logs and the MariaDB datadir all live under $PAE_SLURM_DIR (default /tmp/pae-slurm);
# a second start reuses them (jobs and accounting survive a stop/start). Idempotent: exits 0 when already running.
# Needs root and the packages of install.sh. Timeouts: PAE_SLURM_TIMEOUT seconds per wait (default 60).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"

TIMEOUT=${PAE_SLURM_TIMEOUT:-60}
T0=$(now)
log() { echo "[start $(elapsed "$T0")s] $*"; }
die() { echo "[start] ERROR: $*" >&2; exit 1; }

require_root start
for cmd in munged mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sacctmgr scontrol sinfo runuser setsid; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run $HERE/install.sh first"
done

export SLURM_CONF=$SLURM_CONF_FILE

# every node answers: idle, or busy with jobs
nodes_up() {
    local out
    out=$(sinfo -h -N -o '%N %t' | sort -u)
    for n in "${NODES[@]}"; do
        grep -Eq "^$n (idle|mix|alloc|comp)\$" <<<"$out" || return 1
    done
}

# ---------------------------------------------------------------------------------------------------------------
# Already running? Everything up: say so, exit 0. Partly up: stop what is left and start afresh.
running=0 total=0
while read -r pf comm; do
    total=$((total + 1))
    if alive "$pf" "$comm"; then running=$((running + 1)); fi
done < <(daemons)
if [[ $running -eq $total ]] && scontrol ping 2>/dev/null | grep -q 'is UP' && nodes_up 2>/dev/null; then
    log "already running (PAE_SLURM_DIR=$D, $total daemons up)"
    sinfo
    exit 0
fi
if [[ $running -gt 0 ]]; then
    log "partly running ($running of $total daemons up, or nodes not idle): stopping them first"
    "$HERE/stop.sh"
fi

# Another cluster (another PAE_SLURM_DIR, or a system SLURM) holding our ports would make the daemons fail late.
port_busy() {   # PORT: a TCP socket listens on it (IPv4 or IPv6)
    local hex
    hex=$(printf '%04X' "$1")
    local f
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        awk -v h=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' "$f" && return 0
    done
    return 1
}
for port in 6817 6818 6819 "${EXTRA_PORTS[@]}"; do
    if port_busy "$port"; then
        other=$(readlink /etc/slurm/slurm.conf 2>/dev/null || true)
        hint="stop it first"
        if [[ $other == */etc/slurm.conf ]]; then hint="stop it first: PAE_SLURM_DIR=${other%/etc/slurm.conf} $HERE/stop.sh"; fi
        die "TCP port $port is in use: is another SLURM cluster running? $hint"
    fi
done

# ---------------------------------------------------------------------------------------------------------------
# wait_for WHAT LOGFILE PIDFILE COMM CMD...: poll CMD until it succeeds; fail at once if the daemon died, or after
# $TIMEOUT s; on failure print the tail of the daemon's log.
wait_for() {
    local what=$1 logfile=$2 pidfile=$3 comm=$4; shift 4
    local t0 deadline
    t0=$(now)
    deadline=$(( $(date +%s) + TIMEOUT ))
    while ! "$@" >/dev/null 2>&1; do
        if [[ -n $pidfile ]] && { [[ -e $pidfile ]] || past "$t0" 5; } && ! alive "$pidfile" "$comm"; then
            fail "$what: $comm is not running" "$logfile"
        fi
        if (( $(date +%s) >= deadline )); then
            fail "$what: not ready after ${TIMEOUT}s" "$logfile"
        fi
        sleep 0.2
    done
    log "$what: ready ($(elapsed "$t0")s)"
}
# past T0 SECONDS: true when more than SECONDS have gone by since T0
past() { awk -v a="$1" -v b="$(now)" -v s="$2" 'BEGIN { exit !(b - a > s) }'; }
# fail MESSAGE [LOGFILE...]: report, show the end of each log, exit 1 (the EXIT trap stops what was started)
fail() {
    echo "[start] ERROR: $1" >&2
    shift
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "[start] ---- last lines of $f ----" >&2
        grep -v 'pmix' "$f" | tail -n 20 >&2   # the PMIx plugin errors are harmless noise (MpiDefault=none)
    done
    [[ $# -eq 0 ]] || echo "[start] ----" >&2
    exit 1
}
# A failed start stops the daemons it started, so that nothing is left half-up (the logs stay);
# PAE_SLURM_KEEP_ON_FAILURE=1 leaves them running for debugging.
started=0
on_exit() {
    local rc=$?
    if [[ $rc -ne 0 && $started -eq 1 && ${PAE_SLURM_KEEP_ON_FAILURE:-0} != 1 ]]; then
        echo "[start] start failed: stopping the daemons started so far (logs in $LOG)" >&2
        "$HERE/stop.sh" >&2 || true
    fi
    exit $rc
}
trap on_exit EXIT
# launch LOGFILE CMD...: run CMD detached (own session, no inherited stdio, so a caller capturing our output never
# waits for the daemons)
launch() {
    local logfile=$1; shift
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
}

# ---------------------------------------------------------------------------------------------------------------
log "scratch folder $D"
mkdir -p "$D" "$ETC" "$RUN" "$LOG" "$D/state/slurmctld" "$D/mysql" "$MYSQL_DATA" "$MYSQL_RUN" "$MUNGE_RUN" "$MUNGE_LOG"
for n in "${NODES[@]}"; do mkdir -p "$D/spool/slurmd-$n"; done
chmod 755 "$D" "$ETC" "$RUN" "$LOG" "$D/mysql"
chown -R mysql:mysql "$MYSQL_DATA" "$MYSQL_RUN"
chown munge:munge "$MUNGE_RUN" "$MUNGE_LOG"
chmod 700 "$MUNGE_RUN" "$MUNGE_LOG"
touch "$LOG/mariadb.log"; chown mysql:mysql "$LOG/mariadb.log"
# mysql and munge must reach their folders through every parent directory
for u in mysql munge; do
    runuser -u "$u" -- test -x "$D" || die "user $u cannot enter $D: choose a PAE_SLURM_DIR outside private folders (e.g. under /tmp)"
done
(( ${#MYSQL_SOCK} < 100 )) || die "PAE_SLURM_DIR is too long for a unix socket path ($MYSQL_SOCK)"

# ---------------------------------------------------------------------------------------------------------------
# Node sizes from the hardware: slurmd -C gives the CPU topology; memory is 80% of what is free now (slurmd drains a
# node whose RealMemory exceeds the machine's). The three nodes share the machine: SLURM's bookkeeping
# oversubscribes it 3x by design. Overrides: PAE_SLURM_CPUS, PAE_SLURM_MEM_MB.
hw=$(slurmd -C 2>/dev/null | head -1 || true)
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
cpus=$(field CPUs); boards=$(field Boards); sockets=$(field SocketsPerBoard)
cores=$(field CoresPerSocket); threads=$(field ThreadsPerCore); hwmem=$(field RealMemory)
if [[ -n ${PAE_SLURM_CPUS:-} || -z $cpus || -z $cores ]]; then
    cpus=${PAE_SLURM_CPUS:-$(nproc)}
    topology="CPUs=$cpus"
else
    topology="CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads"
fi
avail_mb=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
mem=${PAE_SLURM_MEM_MB:-$(( avail_mb * 8 / 10 ))}
if [[ -n $hwmem ]] && (( mem > hwmem )); then mem=$hwmem; fi
log "nodes: $topology RealMemory=$mem (MemAvailable ${avail_mb} MB)"

# ---------------------------------------------------------------------------------------------------------------
# Configs (rewritten at each start; the database password is kept).
[[ -s $ETC/db.pass ]] || (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$ETC/db.pass")
DBPASS=$(cat "$ETC/db.pass")

cat >"$SLURM_CONF_FILE" <<CONF
# pae local-slurm: written by $HERE/start.sh; rewritten at each start
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
# a requeued job may start again after ~12 s instead of 120 s (read at daemon start only)
AuthInfo=cred_expire=10
CredType=cred/munge

StateSaveLocation=$D/state/slurmctld
SlurmdSpoolDir=$D/spool/slurmd-%n
SlurmctldPidFile=$(pidfile_slurmctld)
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info

# no cgroups: no systemd here, and containers often cannot delegate them
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true

SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without it a job with no --mem takes the whole node and jobs run one at a time
DefMemPerCPU=1000
MinJobAge=300
KillWait=5
ReturnToService=2
JobRequeue=1
InactiveLimit=0
Waittime=0

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none

# the machine's own node, and n1/n2: extra slurmds on the same machine (MULTIPLE_SLURMD, slurmd -N NAME)
NodeName=$HOST NodeAddr=127.0.0.1 Port=6818 $topology RealMemory=$mem State=UNKNOWN
NodeName=${EXTRA_NODES[0]} NodeHostname=$HOST NodeAddr=127.0.0.1 Port=${EXTRA_PORTS[0]} $topology RealMemory=$mem State=UNKNOWN
NodeName=${EXTRA_NODES[1]} NodeHostname=$HOST NodeAddr=127.0.0.1 Port=${EXTRA_PORTS[1]} $topology RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=multi Nodes=${EXTRA_NODES[0]},${EXTRA_NODES[1]} Default=NO MaxTime=INFINITE State=UP
CONF

# slurmdbd finds its config next to slurm.conf (dirname of SLURM_CONF); it insists on mode 600 and its SlurmUser as owner
(umask 077; cat >"$ETC/slurmdbd.conf" <<CONF
# pae local-slurm: written by $HERE/start.sh; rewritten at each start
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$(pidfile_slurmdbd)
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
CONF
)
chmod 600 "$ETC/slurmdbd.conf"

cat >"$MYSQL_CNF" <<CONF
# pae local-slurm: MariaDB for slurmdbd; unix socket only
[mysqld]
user=mysql
datadir=$MYSQL_DATA
socket=$MYSQL_SOCK
pid-file=$(pidfile_mariadbd)
log-error=$LOG/mariadb.log
skip-networking
skip-log-bin
innodb_buffer_pool_size=128M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
[client]
socket=$MYSQL_SOCK
CONF

cat >"$D/env.sh" <<CONF
# source me: the pae local SLURM cluster's client environment
export PAE_SLURM_DIR=$D
export SLURM_CONF=$SLURM_CONF_FILE
CONF

# Clients inside jobs may lose SLURM_CONF (snakemake's slurm executor strips every SLURM_* variable): they must find
# the config at the default path. Keep an unrelated existing /etc/slurm/slurm.conf as a backup.
mkdir -p /etc/slurm
if [[ -e /etc/slurm/slurm.conf && ! -L /etc/slurm/slurm.conf ]] && ! grep -q '^# pae local-slurm' /etc/slurm/slurm.conf; then
    log "moving the existing /etc/slurm/slurm.conf to /etc/slurm/slurm.conf.pae-backup"
    mv /etc/slurm/slurm.conf /etc/slurm/slurm.conf.pae-backup
fi
if [[ $(readlink /etc/slurm/slurm.conf 2>/dev/null) != "$SLURM_CONF_FILE" ]]; then
    ln -sfn "$SLURM_CONF_FILE" /etc/slurm/slurm.conf
    log "linked /etc/slurm/slurm.conf -> $SLURM_CONF_FILE"
fi

# n1 and n2 must resolve (MASTER_ADDR and friends are taken from the node list), and so must this host
unresolved=()
for name in "${EXTRA_NODES[@]}" "$HOST"; do
    getent hosts "$name" >/dev/null || unresolved+=("$name")
done
if [[ ${#unresolved[@]} -gt 0 ]]; then
    echo "127.0.0.1 ${unresolved[*]}" >>/etc/hosts
    log "added '127.0.0.1 ${unresolved[*]}' to /etc/hosts"
fi

# ---------------------------------------------------------------------------------------------------------------
started=1
# 1. munge (reuse one that already answers on the default socket, e.g. a system service)
if alive "$(pidfile_munged)" munged; then
    log "munged: already running"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged: an outside munged answers on the default socket: using it"
    rm -f "$(pidfile_munged)"
else
    [[ -s /etc/munge/munge.key ]] || die "/etc/munge/munge.key missing: run $HERE/install.sh"
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    log "munged: starting"
    rm -f "$(pidfile_munged)"
    launch "$LOG/munged.out" runuser -u munge -- munged --pid-file="$(pidfile_munged)" --log-file="$MUNGE_LOG/munged.log"
    wait_for "munged" "$MUNGE_LOG/munged.log" "$(pidfile_munged)" munged sh -c 'munge -n | unmunge'
fi

# 2. MariaDB
if alive "$(pidfile_mariadbd)" mariadbd; then
    log "mariadbd: already running"
else
    if [[ ! -e $D/mysql/initialised ]]; then
        log "mariadbd: initialising $MYSQL_DATA"
        rm -rf "${MYSQL_DATA:?}"/* && chown mysql:mysql "$MYSQL_DATA"
        mariadb-install-db --defaults-file="$MYSQL_CNF" --user=mysql --auth-root-authentication-method=socket \
            --skip-test-db >>"$LOG/mariadb-install.log" 2>&1 \
            || fail "mariadb-install-db failed" "$LOG/mariadb-install.log"
        touch "$D/mysql/initialised"
    fi
    log "mariadbd: starting"
    rm -f "$(pidfile_mariadbd)"
    launch "$LOG/mariadb.log" mariadbd --defaults-file="$MYSQL_CNF"
    wait_for "mariadbd" "$LOG/mariadb.log" "$(pidfile_mariadbd)" mariadbd \
        mariadb-admin --defaults-file="$MYSQL_CNF" -uroot ping
fi
mariadb --defaults-file="$MYSQL_CNF" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# 3. slurmdbd (finds the MariaDB socket through MYSQL_UNIX_PORT), then register the cluster
log "slurmdbd: starting"
rm -f "$(pidfile_slurmdbd)"
MYSQL_UNIX_PORT=$MYSQL_SOCK launch "$LOG/slurmdbd.out" slurmdbd
wait_for "slurmdbd" "$LOG/slurmdbd.log" "$(pidfile_slurmdbd)" slurmdbd timeout 10 sacctmgr -n -P show cluster
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    log "registered cluster $CLUSTER with slurmdbd"
fi

# 4. slurmctld
log "slurmctld: starting"
rm -f "$(pidfile_slurmctld)"
launch "$LOG/slurmctld.out" slurmctld
ctld_up() { scontrol ping | grep -q 'is UP'; }
wait_for "slurmctld" "$LOG/slurmctld.log" "$(pidfile_slurmctld)" slurmctld ctld_up

# 5. slurmds: the machine's node, then n1 and n2
for n in "${NODES[@]}"; do
    log "slurmd $n: starting"
    rm -f "$(pidfile_slurmd "$n")"
    launch "$LOG/slurmd-$n.out" slurmd -N "$n"
done
# Nodes come back from the saved state as they were: one drained by an earlier run (e.g. with another node size)
# stays drained (ReturnToService=2 only revives DOWN nodes). This is a test cluster: resume such nodes, once each.
declare -A resumed=()
t0=$(now); deadline=$(( $(date +%s) + TIMEOUT ))
until nodes_up 2>/dev/null; do
    if past "$t0" 2; then
        while read -r n st; do
            [[ -n $n && -z ${resumed[$n]:-} ]] || continue
            if [[ $st =~ ^(drain|drng|down|fail) ]]; then
                resumed[$n]=1
                log "node $n is $st ($(sinfo -h -N -n "$n" -o %E | head -1)): resuming it"
                scontrol update NodeName="$n" State=RESUME || true
            fi
        done < <(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u)
    fi
    for n in "${NODES[@]}"; do
        if ! alive "$(pidfile_slurmd "$n")" slurmd && past "$t0" 5; then
            fail "slurmd $n is not running" "$LOG/slurmd-$n.log"
        fi
    done
    if (( $(date +%s) >= deadline )); then
        sinfo -N -l >&2 || true
        bad=$(sinfo -h -N -o '%N %t' | awk '$2 !~ /^(idle|mix|alloc|comp)$/ { print $1; exit }')
        fail "nodes not idle after ${TIMEOUT}s (see REASON above)" "$LOG/slurmd-${bad:-$HOST}.log" "$LOG/slurmctld.log"
    fi
    sleep 0.2
done
log "slurmds: all nodes up ($(elapsed "$t0")s)"

echo "[start] cluster '$CLUSTER' up in $(elapsed "$T0")s; clients: source $D/env.sh (or use /etc/slurm/slurm.conf)"
sinfo
