#!/usr/bin/env bash
# `make test`: start the real Kafka broker (unless one from `make kafka-up` already runs),
# run every test against it with -race -shuffle=on, stop the broker we started, and exit
# with go test's status.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

start=$SECONDS
started=0
if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh up
  started=1
fi
stop() { if [ "$started" = 1 ]; then scripts/kafka.sh down || true; fi; }
trap stop EXIT

export UCPRELAY_TEST_BROKERS
UCPRELAY_TEST_BROKERS=$(scripts/kafka.sh brokers)
echo "test.sh: real Kafka at $UCPRELAY_TEST_BROKERS (ready after $((SECONDS - start))s)"

status=0
go test -race -shuffle=on -count=1 -timeout 13m ./... || status=$?
echo "test.sh: go test exited $status after $((SECONDS - start))s in all"
exit "$status"
