#!/usr/bin/env bash
# Install what the one-machine SLURM cluster needs (Debian 12: SLURM 22.05, munge, slurmdbd, MariaDB).
# Idempotent: installs only the packages that are missing. Must run as root.
# The packages' own service start-up is suppressed (policy-rc.d): start.sh starts every daemon itself.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server mariadb-client procps)

log() { echo "[install] $*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "[install] ERROR: must run as root (apt-get installs packages); try: sudo $0" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "[install] ERROR: apt-get not found: this script is for Debian 12 (bookworm)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        log "already installed: $p"
    else
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    log "nothing to install"
else
    export DEBIAN_FRONTEND=noninteractive
    # Package lists never fetched (fresh container) or without a candidate for one of our packages: update them.
    need_update=0
    for p in "${missing[@]}"; do
        if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then need_update=1; fi
    done
    if [[ $need_update -eq 1 ]]; then
        log "apt-get update"
        apt-get update -q
    fi
    # Keep the maintainer scripts from starting mariadb/munge/slurm services (no systemd here; start.sh does it).
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    log "apt-get install ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# munge's key: the package creates it; make sure it exists with the modes munged insists on.
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key

log "versions: $(slurmctld -V 2>/dev/null || echo 'slurmctld ?'), $(munged -V 2>/dev/null | head -1 || echo 'munged ?'), $(mariadbd --version 2>/dev/null | awk '{print $1, $3}' || echo 'mariadbd ?')"
log "done"
