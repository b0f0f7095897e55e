#!/usr/bin/env bash
# Real Apache Kafka for tests: a single-node KRaft broker on 127.0.0.1, started from jars
# fetched from Maven Central with mvn (cached after the first run). No Docker, no tarball.
#
#   scripts/kafka.sh fetch    download the jars into $KAFKA_CACHE (once)
#   scripts/kafka.sh up       fetch, format a fresh store, start, wait until a metadata request answers
#   scripts/kafka.sh down     stop the broker started by 'up' (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh start    start it again on the same store after a 'down' (its data kept)
#   scripts/kafka.sh status   print whether it runs and where
#   scripts/kafka.sh brokers  print the bootstrap address (for UCPRELAY_TEST_BROKERS)
#   scripts/kafka.sh sasl-brokers  print the SASL_PLAINTEXT address (for UCPRELAY_TEST_SASL_BROKERS)
#   scripts/kafka.sh tls-brokers   print the SSL address (for UCPRELAY_TEST_TLS_BROKERS); its CA and a
#                                  client certificate are in $KAFKA_RUN/tls (UCPRELAY_TEST_TLS_DIR)
#
# The broker also listens with SASL_PLAINTEXT on KAFKA_SASL_PORT (default 39094), where the
# test user "ucprelay" (password "ucprelay-test-secret", this test broker's own) logs in
# with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, and with mutual TLS on KAFKA_TLS_PORT (default
# 39095), with a CA and certificates made for the run by internal/kafkatest/cmd/kafkacerts.
#
# Environment: KAFKA_PORT (default 39092), KAFKA_CONTROLLER_PORT (default 39093),
# KAFKA_CACHE (default <repo>/.cache/kafka), KAFKA_RUN (default <repo>/.cache/kafka/run),
# KAFKA_READY_TIMEOUT seconds (default 90).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pom="$root/scripts/kafka/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
port=${KAFKA_PORT:-39092}
cport=${KAFKA_CONTROLLER_PORT:-39093}
sport=${KAFKA_SASL_PORT:-39094}
tport=${KAFKA_TLS_PORT:-39095}
sasl_user=ucprelay
sasl_pass=ucprelay-test-secret
cache=${KAFKA_CACHE:-$root/.cache/kafka}
run=${KAFKA_RUN:-$cache/run}
libs="$cache/libs-$version"
ready_timeout=${KAFKA_READY_TIMEOUT:-90}
brokers="127.0.0.1:$port"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

fetch() {
  if [ -f "$libs/.complete" ] && [ "$(cat "$libs/.complete")" = "$(sha256sum "$pom" | cut -d' ' -f1)" ]; then
    return 0
  fi
  command -v mvn >/dev/null || { log "mvn not found: install Maven (tests need Java 17 and Maven)"; exit 1; }
  command -v java >/dev/null || { log "java not found: install a Java 17 JDK"; exit 1; }
  log "fetching Apache Kafka $version jars from Maven Central into $libs (first run only)"
  rm -rf "$libs.tmp"
  mvn -q -B -Dstyle.color=never -f "$pom" org.apache.maven.plugins:maven-dependency-plugin:3.10.0:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs.tmp"
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
  sha256sum "$pom" | cut -d' ' -f1 >"$libs/.complete"
  log "fetched $(ls "$libs" | grep -c '\.jar$') jars"
}

pid_alive() { [ -f "$run/kafka.pid" ] && kill -0 "$(cat "$run/kafka.pid")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
  fetch
  if pid_alive; then
    log "already running (pid $(cat "$run/kafka.pid")) on $brokers"
    return 0
  fi
  if port_open "$port" || port_open "$cport" || port_open "$sport" || port_open "$tport"; then
    log "port $port, $cport, $sport or $tport is taken by another process; set KAFKA_PORT/KAFKA_CONTROLLER_PORT/KAFKA_SASL_PORT/KAFKA_TLS_PORT"
    exit 1
  fi
  rm -rf "$run"
  mkdir -p "$run/data" "$run/logs"
  (cd "$root" && go run ./internal/kafkatest/cmd/kafkacerts -dir "$run/tls") || { log "could not make the TLS certificates"; exit 1; }
  cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$run/tls/broker-keystore.pem
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$run/tls/ca.pem
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$sasl_pass";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$run/data
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests kill relays and wait for the group to notice: allow short session timeouts.
group.min.session.timeout.ms=1000
group.coordinator.rebalance.protocols=classic,consumer
log.cleaner.backoff.ms=100
log.retention.check.interval.ms=10000
PROPS
  cat >"$run/log4j2.properties" <<'PROPS'
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
PROPS
  local cp="$libs/*"
  local id
  id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  java -cp "$cp" -Dlog4j2.configurationFile="file:$run/log4j2.properties" -Dkafka.logs.dir="$run/logs" \
    kafka.tools.StorageTool format --standalone -t "$id" -c "$run/server.properties" --ignore-formatted \
    --add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$sasl_pass]" --add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$sasl_pass]" \
    >"$run/logs/format.log" 2>&1 || { cat "$run/logs/format.log" >&2; exit 1; }
  start_broker
}

# start_broker starts the broker on the store 'up' formatted, keeping its data (used by
# 'up', and by 'start' after a 'down' to restart a broker as a fault).
start_broker() {
  fetch
  if pid_alive; then
    log "already running (pid $(cat "$run/kafka.pid")) on $brokers"
    return 0
  fi
  [ -f "$run/server.properties" ] || { log "no broker store at $run: run '$0 up' first"; exit 1; }
  local cp="$libs/*"
  log "starting Kafka $version on $brokers (logs: $run/logs)"
  nohup java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:$run/log4j2.properties" -Dkafka.logs.dir="$run/logs" \
    -cp "$cp" kafka.Kafka "$run/server.properties" >"$run/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$run/kafka.pid"
  local start=$SECONDS
  until port_open "$port"; do
    if ! pid_alive; then log "broker exited during start:"; tail -n 40 "$run/logs/stdout.log" "$run/logs/server.log" >&2 || true; exit 1; fi
    if (( SECONDS - start > ready_timeout )); then log "port $port not open after ${ready_timeout}s"; down; exit 1; fi
    sleep 0.2
  done
  # The port accepts connections before the broker can answer; wait for a real metadata answer.
  if ! (cd "$root" && go run ./internal/kafkatest/cmd/kafkaready -brokers "$brokers" -timeout "$((ready_timeout - (SECONDS - start)))s"); then
    log "broker did not answer a metadata request"; tail -n 40 "$run/logs/server.log" >&2 || true; down; exit 1
  fi
  log "ready on $brokers after $((SECONDS - start))s (pid $(cat "$run/kafka.pid"))"
}

down() {
  if ! pid_alive; then
    log "not running"
    rm -f "$run/kafka.pid"
    return 0
  fi
  local pid
  pid=$(cat "$run/kafka.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "broker ignored SIGTERM for 30s; killing"; kill -KILL "$pid" || true; fi
  rm -f "$run/kafka.pid"
  log "stopped"
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  start) start_broker ;;
  down) down ;;
  status) if pid_alive; then echo "running pid $(cat "$run/kafka.pid") on $brokers"; else echo "not running"; exit 1; fi ;;
  brokers) echo "$brokers" ;;
  sasl-brokers) echo "127.0.0.1:$sport" ;;
  tls-brokers) echo "127.0.0.1:$tport" ;;
  tls-dir) echo "$run/tls" ;;
  *) echo "usage: $0 fetch|up|start|down|status|brokers|sasl-brokers|tls-brokers|tls-dir" >&2; exit 2 ;;
esac
