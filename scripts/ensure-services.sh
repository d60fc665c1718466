#!/usr/bin/env bash
# Makes sure what the test suite talks to is running on this machine: PostgreSQL on 127.0.0.1:5432 and Redis
# on 127.0.0.1:6379 (started if stopped). Idempotent and quick when everything is already up.
set -euo pipefail

wait_for() { # name, command...; bounded: 30 tries, 1 s apart
  local name=$1; shift
  for _ in $(seq 1 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "ensure-services: $name did not come up" >&2; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
fi

# kcat runs librdkafka's mock Kafka cluster for the outbox tests (test/support/kafka.ts).
if ! command -v kcat >/dev/null 2>&1; then
  echo "ensure-services: installing kcat"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq kcat >/dev/null
fi

# Debian's Chromium for the browser wallet test (test/wallet-browser.test.ts, driven by playwright-core).
if [ ! -x /usr/bin/chromium ]; then
  echo "ensure-services: installing chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi
