# shellcheck shell=bash disable=SC2034  # sourced; the variables are used by start.sh and stop.sh
# Shared by start.sh and stop.sh (sourced, not run): the scratch layout and pidfile helpers.
# Everything the cluster writes lives under $PAE_SLURM_DIR (default /tmp/pae-slurm), except
# /etc/slurm/slurm.conf (a symlink into it), the munge socket in /run/munge and the n1/n2 line in /etc/hosts.

PAE_SLURM_DIR=${PAE_SLURM_DIR:-/tmp/pae-slurm}
case $PAE_SLURM_DIR in /*) ;; *) PAE_SLURM_DIR=$PWD/$PAE_SLURM_DIR ;; esac
PAE_SLURM_DIR=${PAE_SLURM_DIR%/}
D=$PAE_SLURM_DIR

CLUSTER=pae
HOST=$(hostname -s)
EXTRA_NODES=(n1 n2)
EXTRA_PORTS=(17001 17002)
NODES=("$HOST" "${EXTRA_NODES[@]}")

ETC=$D/etc
RUN=$D/run
LOG=$D/log
SLURM_CONF_FILE=$ETC/slurm.conf
MYSQL_DATA=$D/mysql/data
MYSQL_RUN=$RUN/mysqld            # owned by mysql: socket + pid
MYSQL_SOCK=$MYSQL_RUN/mysqld.sock
MYSQL_CNF=$ETC/my.cnf
MUNGE_RUN=$RUN/munge             # owned by munge: pid
MUNGE_LOG=$LOG/munge             # owned by munge: munged refuses to log into a folder it does not own

# pidfile -> expected process name (/proc/PID/comm), in start order
pidfile_munged()   { echo "$MUNGE_RUN/munged.pid"; }
pidfile_mariadbd() { echo "$MYSQL_RUN/mariadbd.pid"; }
pidfile_slurmdbd() { echo "$RUN/slurmdbd.pid"; }
pidfile_slurmctld(){ echo "$RUN/slurmctld.pid"; }
pidfile_slurmd()   { echo "$RUN/slurmd-$1.pid"; }   # $1: node name (SlurmdPidFile uses %n)

# alive PIDFILE COMM: true when PIDFILE names a live process called COMM (guards against recycled PIDs)
alive() {
    local pidfile=$1 comm=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null) || return 1
    pid_alive "$pid" "$comm"
}

# pid_alive PID COMM: PID is a live (not zombie) process called COMM
pid_alive() {
    local pid=$1 comm=$2
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
    ! zombie "$pid"
}

# zombie PID: the process has exited but was not reaped yet (some container inits reap only every few seconds)
zombie() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} == Z ]]
}

pid_of() { tr -dc '0-9' <"$1" 2>/dev/null; }

# every daemon this cluster runs, as "pidfile comm", in start order
daemons() {
    if [[ -e $(pidfile_munged) ]]; then echo "$(pidfile_munged) munged"; fi   # absent when an outside munged is used
    echo "$(pidfile_mariadbd) mariadbd"
    echo "$(pidfile_slurmdbd) slurmdbd"
    echo "$(pidfile_slurmctld) slurmctld"
    local n
    for n in "${NODES[@]}"; do echo "$(pidfile_slurmd "$n") slurmd"; done
}

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "[$1] ERROR: must run as root (the daemons run as root, munge/mysql users, /etc/hosts, /etc/slurm)" >&2
        exit 1
    fi
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
