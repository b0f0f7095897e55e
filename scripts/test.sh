#!/usr/bin/env bash
# `make test`: `make lint` (vet, staticcheck, golangci-lint with the import rules), then
# every test with -race -shuffle=on against the real Kafka broker (started by
# with-kafka.sh unless UCPRELAY_TEST_BROKERS names one); exits with the first failure.
# The full verbose log is kept in .cache/test.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .cache

# Lint first (once: the script runs itself again under with-kafka.sh).
if [ -z "${UCPRELAY_TEST_LINTED:-}" ]; then
  lint_start=$SECONDS
  make --no-print-directory lint
  echo "test.sh: make lint passed in $((SECONDS - lint_start))s"
  export UCPRELAY_TEST_LINTED=1
fi
if [ -z "${UCPRELAY_TEST_BROKERS:-}" ]; then
  exec scripts/with-kafka.sh "$0" "$@"
fi
# Build the tool the helm tests run before the clock of any test starts.
go tool -modfile=tools/go.mod helm version >/dev/null
start=$SECONDS
export UCPRELAY_TEST_REPORT
UCPRELAY_TEST_REPORT="$root/.cache/real-broker-tests.txt"
: >"$UCPRELAY_TEST_REPORT"
echo "test.sh: real Kafka at $UCPRELAY_TEST_BROKERS"

log="$root/.cache/test.log"
status=0
go test -race -shuffle=on -count=1 -timeout 13m -v ./... >"$log" 2>&1 || status=$?

# Package results, failures and skips; the whole log is in .cache/test.log.
grep -E '^(ok|FAIL|panic:|--- FAIL|--- SKIP|-test.shuffle)|^\?' "$log" || true
if [ "$status" != 0 ]; then
  echo "test.sh: failures (context from $log):"
  grep -nE -B2 -A25 -- '^\s*--- FAIL|^panic:|^FAIL' "$log" | head -n 400 || true
fi
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
echo "test.sh: tests that ran against the real broker ($(sort -u "$UCPRELAY_TEST_REPORT" | wc -l)):"
sort -u "$UCPRELAY_TEST_REPORT" | sed 's/^/  /'
echo "test.sh: go test exited $status after $((SECONDS - start))s"
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
