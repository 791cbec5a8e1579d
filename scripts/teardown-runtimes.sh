#!/usr/bin/env bash
# Stop the daemons started by scripts/setup-runtimes.sh (registry, dockerd,
# containerd) and scripts/setup-critest.sh (the https registry), newest
# first. Only processes recorded in /run/pycri-ci/*.pid are touched, and
# only if they still run the expected program. Images,
# registry storage and configs are kept; rerun setup-runtimes.sh to restart.
# Containers of containerd's CRI keep running in their shims (dockerd stops
# its own containers when it shuts down).
set -euo pipefail

RUN_DIR=/run/pycri-ci
WAIT_SECONDS=${PYCRI_CI_WAIT:-30}

stop() {  # NAME EXPECTED_COMM
    local name=$1 comm=$2 pidfile=$RUN_DIR/$1.pid pid i
    [[ -f $pidfile ]] || { echo "$name: not started by setup-runtimes.sh"; return 0; }
    pid=$(cat "$pidfile")
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null || true) != "$comm" ]]; then
        echo "$name: pid $pid is not running $comm; nothing to stop"
        rm -f "$pidfile"
        return 0
    fi
    echo "$name: stopping pid $pid"
    kill -TERM "$pid"
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$name: still running after ${WAIT_SECONDS}s, sending SIGKILL"
        kill -KILL "$pid"
    fi
    rm -f "$pidfile"
}

[[ $(id -u) == 0 ]] || { echo "must run as root" >&2; exit 1; }
stop registry-tls docker-registry
stop registry docker-registry
stop dockerd dockerd
stop containerd containerd
