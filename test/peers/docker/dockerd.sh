#!/usr/bin/env bash
# Starts (start, the default) or stops (stop) the Docker daemon test/peers/docker-image.test.ts
# uses. It has its own socket, data root and exec root, so it never meets a system Docker, and
# no bridge and no iptables rules: its containers use the host's network, as dkim-relay's do.
# Needs root and Debian's docker.io. The images and build cache stay in the data root, so the
# next run builds from cache.
set -euo pipefail
SOCK=/run/dkim-relay-test-docker.sock
DATA=/var/lib/dkim-relay-test-docker
EXEC=/run/dkim-relay-test-docker-exec
PIDFILE=/run/dkim-relay-test-docker.pid
LOG=/var/log/dkim-relay-test-dockerd.log

up() { docker -H "unix://$SOCK" version >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    up && exit 0
    mkdir -p "$DATA" "$EXEC"
    setsid dockerd --host "unix://$SOCK" --data-root "$DATA" --exec-root "$EXEC" --pidfile "$PIDFILE" \
      --bridge=none --iptables=false --ip6tables=false >>"$LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do
      up && { echo "dockerd: listening on unix://$SOCK (log: $LOG)"; exit 0; }
      sleep 0.5
    done
    echo "dockerd did not come up on $SOCK within 30 s; the end of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
    ;;
  stop)
    [ -f "$PIDFILE" ] || exit 0
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
    echo "dockerd (pid $pid) did not stop within 30 s" >&2
    exit 1
    ;;
  *)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
