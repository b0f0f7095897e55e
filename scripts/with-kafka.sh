#!/usr/bin/env bash
# with-kafka.sh CMD...: run CMD with UCPRELAY_TEST_BROKERS pointing at the real test broker,
# starting it first unless one from `make kafka-up` already runs, and stopping what it
# started when CMD ends. Exits with CMD's status.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
started=0
if ! "$root/scripts/kafka.sh" status >/dev/null 2>&1; then
  "$root/scripts/kafka.sh" up
  started=1
fi
stop() { if [ "$started" = 1 ]; then "$root/scripts/kafka.sh" down || true; fi; }
trap stop EXIT
export UCPRELAY_TEST_BROKERS UCPRELAY_TEST_SASL_BROKERS UCPRELAY_TEST_TLS_BROKERS UCPRELAY_TEST_TLS_DIR
UCPRELAY_TEST_BROKERS=$("$root/scripts/kafka.sh" brokers)
UCPRELAY_TEST_SASL_BROKERS=$("$root/scripts/kafka.sh" sasl-brokers)
UCPRELAY_TEST_TLS_BROKERS=$("$root/scripts/kafka.sh" tls-brokers)
UCPRELAY_TEST_TLS_DIR=$("$root/scripts/kafka.sh" tls-dir)
status=0
"$@" || status=$?
exit "$status"
