#!/usr/bin/env bash
# Creates the ledger's event topics; compose's one-shot redpanda-init service runs it once redpanda is healthy.
# Safe to run again on every `docker compose up`: a topic that exists is left as it is (partition count and
# settings included), since re-creating it would drop its events.
set -euo pipefail

BROKERS="${RPK_BROKERS:-redpanda:9092}"
PARTITIONS="${TOPIC_PARTITIONS:-3}"
# The dev stack has one broker, so no higher replication factor can be met.
REPLICAS="${TOPIC_REPLICAS:-1}"
TOPICS=(
  payment.events.v1.accounts
  payment.events.v1.payments
)

rpk() { command rpk -X "brokers=${BROKERS}" "$@"; }

# Listed once, up front, so an unreachable broker fails the service instead of looking like "no topics yet";
# `create --if-not-exists` is not in every rpk release, and `create || true` would hide real errors.
existing="$(rpk topic list | awk 'NR > 1 { print $1 }')"

for topic in "${TOPICS[@]}"; do
  if grep -qxF -- "$topic" <<<"$existing"; then
    echo "topic ${topic} already exists"
  else
    rpk topic create "$topic" --partitions "$PARTITIONS" --replicas "$REPLICAS"
  fi
done

rpk topic list
