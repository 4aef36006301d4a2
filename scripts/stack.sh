#!/usr/bin/env bash
# Local test stack: a real Apache Kafka 4.x (KRaft, jars from Maven Central),
# a private OpenSSH sftp server and, on request, an Apicurio Registry 3.x
# (Confluent API under /apis/ccompat/v7, in-memory storage; from Maven
# Central, run on a Java 21+ JDK), all on 127.0.0.1 with ports picked free.
#
#   scripts/stack.sh up [--kafka-nodes 1|3] [--no-sftp] [--no-kafka] [--schema-registry] [--secure]
#   scripts/stack.sh acl ARGS...       (kafka-acls as the super user, e.g. --add --allow-principal User:cdr ...)
#   scripts/stack.sh down | status | env
#   scripts/stack.sh kafka-stop N | kafka-kill N | kafka-start N     (N is 1-based)
#   scripts/stack.sh sshd-stop | sshd-start
#   scripts/stack.sh registry-stop | registry-start
#
#   eval "$(scripts/stack.sh env)"   # KAFKA_BROKERS, SFTP_*, SCHEMA_REGISTRY_URL ... for tests
#
# --secure: Kafka's client listener is SASL_SSL only: TLS with a throwaway CA
# and a broker certificate for 127.0.0.1/localhost (made with openssl, the
# host name checked), SCRAM-SHA-512 users created at format time (`admin`,
# the super user the stack's own tools use; `cdr`, the service's, and
# `auditor`, with no ACL: grant them with `acl`), and the standard authorizer with
# allow.everyone.if.no.acl.found=false. `env` then exports the service's
# KAFKA_CONFIG_* settings (protocol, mechanism, user, password, CA file) and
# the super user's as KAFKA_ADMIN_*. Its sshd takes keys only, and `env`
# pins its host key by fingerprint (SFTP_HOST_KEY_FINGERPRINT).
#
# All state (ports, configs, data, logs, keys) lives in $STACK_DIR, default
# <repo>/.stack, so several stacks can run side by side with different
# STACK_DIRs. Ports are chosen at `up` and reused by kafka-start/sshd-start.
# Needs root (useradd, chown) for the sftp part.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
STACK_DIR=${STACK_DIR:-$REPO_DIR/.stack}
KAFKA_POM=$SCRIPT_DIR/kafka/pom.xml
KAFKA_LIBS=${KAFKA_LIBS_DIR:-$REPO_DIR/.cache/kafka-libs}
KAFKA_READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-60}
SSHD_READY_TIMEOUT=20
REGISTRY_VERSION=3.3.3
REGISTRY_APP=${REGISTRY_APP_DIR:-$REPO_DIR/.cache/apicurio-registry-$REGISTRY_VERSION}
REGISTRY_READY_TIMEOUT=${REGISTRY_READY_TIMEOUT:-90}
SFTP_USER=cdrsftp
# The password of the machine-wide user cdrsftp is shared by every stack on
# this machine: a new random one per stack would lock out the stacks already
# running. Generated once, copied into each stack dir.
SFTP_SECRET_DIR=/var/lib/cdr-to-redpanda-stack
# Ports claimed by any stack on this machine (one file per port, naming the
# stack dir): keeps concurrent `up`s and stopped-but-reserved nodes apart.
PORT_REGISTRY=${STACK_PORT_REGISTRY:-/tmp/cdr-stack-ports}
HOST=127.0.0.1

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }

# --------------------------------------------------------------------------
# state file: KEY=value lines written with %q, read back with `source`

state_file() { echo "$STACK_DIR/stack.state"; }

load_state() {
  [[ -f $(state_file) ]] || die "no stack in $STACK_DIR (run: scripts/stack.sh up)"
  # shellcheck disable=SC1090
  source "$(state_file)"
}

save_state() {
  local tmp var
  tmp=$(mktemp "$STACK_DIR/.state.XXXXXX")
  for var in KAFKA_NODES SFTP_ENABLED CLUSTER_ID SFTP_PORT REGISTRY_ENABLED REGISTRY_PORT REGISTRY_MPORT SECURE_ENABLED $(kafka_port_vars); do
    printf '%s=%q\n' "$var" "${!var-}" >>"$tmp"
  done
  mv "$tmp" "$(state_file)"
}

kafka_port_vars() {
  local n
  for ((n = 1; n <= ${KAFKA_NODES:-0}; n++)); do echo "KAFKA_PORT_$n KAFKA_CPORT_$n"; done
}

kafka_port() { local v="KAFKA_PORT_$1"; echo "${!v}"; }
kafka_cport() { local v="KAFKA_CPORT_$1"; echo "${!v}"; }

# Serialises state-changing commands on one stack dir.
lock_stack() {
  mkdir -p "$STACK_DIR"
  exec 9>"$STACK_DIR/.lock"
  flock 9
}

# --------------------------------------------------------------------------
# free ports

port_in_use() { [[ -n $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]; }

# Claims a free port for this stack; result in REPLY. Picks below the kernel's
# ephemeral range so that outgoing connections never sit on our ports.
claim_port() {
  local lo hi p owner i
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  hi=$((lo > 20100 ? lo - 1 : 32767))
  mkdir -p "$PORT_REGISTRY"
  chmod 1777 "$PORT_REGISTRY" 2>/dev/null || true
  for ((i = 0; i < 500; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % (hi - 20000)))
    if [[ -e $PORT_REGISTRY/$p ]]; then
      owner=$(cat "$PORT_REGISTRY/$p" 2>/dev/null || true)
      # a stale claim: its stack dir was deleted without `down`
      [[ -n $owner && ! -e $owner/stack.state && ! -e $owner/.lock ]] && rm -f "$PORT_REGISTRY/$p"
    fi
    port_in_use "$p" && continue
    # noclobber makes the claim atomic against a concurrent `up`
    if (set -o noclobber; echo "$STACK_DIR" >"$PORT_REGISTRY/$p") 2>/dev/null; then
      REPLY=$p
      return 0
    fi
  done
  die "no free port found"
}

release_ports() {
  local p owner
  for p in "$@"; do
    [[ -n $p && -e $PORT_REGISTRY/$p ]] || continue
    owner=$(cat "$PORT_REGISTRY/$p" 2>/dev/null || true)
    [[ $owner == "$STACK_DIR" ]] && rm -f "$PORT_REGISTRY/$p"
  done
  return 0
}

all_ports() {
  local n
  for ((n = 1; n <= ${KAFKA_NODES:-0}; n++)); do echo "$(kafka_port "$n") $(kafka_cport "$n")"; done
  echo "${SFTP_PORT-} ${REGISTRY_PORT-} ${REGISTRY_MPORT-}"
}

# --------------------------------------------------------------------------
# processes (pid files are checked against the command line, so a stale pid
# reused by another process is never signalled)

# pid_of PIDFILE MARKER: prints the pid if that process runs and its command
# line contains MARKER.
pid_of() {
  local pid
  [[ -s $1 ]] || return 1
  read -r pid <"$1" || return 1
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  echo "$pid"
}

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # the state letter follows the "(comm)" field
  [[ -n $stat && ${stat:0:1} != Z ]]
}

# wait_gone PID SECONDS: true once PID has exited.
wait_gone() {
  local pid=$1 deadline=$(($(now) + $2))
  while alive "$pid"; do
    (($(now) < deadline)) || return 1
    sleep 0.2
  done
}

# stop_pid PID SECONDS SIGNAL: signal, wait, SIGKILL after the deadline.
stop_pid() {
  local pid=$1 timeout=$2 sig=${3:-TERM}
  kill -"$sig" "$pid" 2>/dev/null || return 0
  if ! wait_gone "$pid" "$timeout"; then
    log "pid $pid still alive after ${timeout}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "pid $pid does not die"
  fi
}

show_log() {
  local f=$1
  log "log file: $f (last 40 lines)"
  [[ -f $f ]] && tail -n 40 "$f" >&2
  return 0
}

# ==========================================================================
# Kafka

node_dir() { echo "$STACK_DIR/kafka/node$1"; }
node_log() { echo "$(node_dir "$1")/kafka.log"; }
kafka_pid() { pid_of "$(node_dir "$1")/kafka.pid" "$(node_dir "$1")/server.properties"; }

brokers() {
  local n out=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do out+=("$HOST:$(kafka_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

# Copies the broker's runtime classpath from Maven Central once; a stamp with
# the pom's sha256 makes later runs skip Maven entirely.
ensure_kafka_libs() {
  local sha tmp
  sha=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  [[ -f $KAFKA_LIBS/.complete && $(<"$KAFKA_LIBS/.complete") == "$sha" ]] && return 0
  mkdir -p "$(dirname "$KAFKA_LIBS")"
  exec 8>"$KAFKA_LIBS.lock"
  flock 8 # another stack may be downloading the same jars right now
  if [[ -f $KAFKA_LIBS/.complete && $(<"$KAFKA_LIBS/.complete") == "$sha" ]]; then
    exec 8>&-
    return 0
  fi
  log "downloading Kafka jars into $KAFKA_LIBS (first run only)"
  tmp=$(mktemp -d "$KAFKA_LIBS.tmp.XXXXXX")
  if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    show_log "$tmp.log"
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars"
  fi
  rm -f "$tmp.log"
  echo "$sha" >"$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  exec 8>&-
}

# Kafka's own Uuid format: 16 random bytes, base64url without padding.
# (Saves a JVM start over `kafka.tools.StorageTool random-uuid`; Kafka rejects
# ids starting with '-', so draw again in that case.)
random_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $id != -* ]] && { echo "$id"; return; }
  done
}

write_kafka_config() {
  local n=$1 dir rf isr quorum m voters=()
  dir=$(node_dir "$n")
  mkdir -p "$dir/data"
  if ((KAFKA_NODES == 1)); then
    rf=1 isr=1
    # dynamic quorum of one, formatted with --standalone
    quorum="controller.quorum.bootstrap.servers=$HOST:$(kafka_cport 1)"
  else
    rf=3 isr=2
    # static quorum: every node knows all voters, formatted without --standalone
    for ((m = 1; m <= KAFKA_NODES; m++)); do voters+=("$m@$HOST:$(kafka_cport "$m")"); done
    quorum="controller.quorum.voters=$(IFS=,; echo "${voters[*]}")"
  fi
  cat >"$dir/server.properties" <<EOF
# generated by scripts/stack.sh
process.roles=broker,controller
node.id=$n
$quorum
$(listener_config "$n")
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=1
# topics created without an explicit factor survive a node failure on 3 nodes
default.replication.factor=$rf
# few partitions for the internal topics: much faster first transaction/group
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
share.coordinator.state.topic.num.partitions=4
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# A new log segment preallocates its offset and time index as sparse files
# of this size, mapped into memory. On this machine kind (8 MiB read-ahead on
# the disk) the first write into an index page faults in and zero-fills
# megabytes of holes: with the default 10 MiB the first 6 MB written into 12
# new partitions cost the broker 0.3-1.1 s of CPU (perf: memset under
# filemap_fault), which every test and bench run pays, each writing topics
# of its own. 1 MiB still indexes 341 MiB of log (a segment rolls sooner
# only when its index is full).
log.index.size.max.bytes=1048576
EOF
  cat >"$dir/log4j2.properties" <<EOF
# generated by scripts/stack.sh
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/kafka.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# per-request and per-partition chatter
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
  cat >"$dir/log4j2-tool.properties" <<EOF
# generated by scripts/stack.sh: for kafka.tools.StorageTool
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
EOF
}

# The listeners of node $1: PLAINTEXT, or with --secure SASL_SSL (TLS +
# SCRAM-SHA-512, inter-broker as the super user) under the standard
# authorizer. The controller listener stays PLAINTEXT on loopback, its
# principal (ANONYMOUS) a super user as KRaft needs.
listener_config() {
  local n=$1 port cport pki
  port=$(kafka_port "$n") cport=$(kafka_cport "$n") pki=$(pki_dir)
  if ! ((${SECURE_ENABLED:-0})); then
    cat <<EOF
listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport
advertised.listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
EOF
    return
  fi
  cat <<EOF
listeners=SASL_SSL://$HOST:$port,CONTROLLER://$HOST:$cport
advertised.listeners=SASL_SSL://$HOST:$port,CONTROLLER://$HOST:$cport
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(<"$pki/admin.password")";
ssl.keystore.type=PEM
ssl.keystore.location=$pki/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$pki/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:ANONYMOUS
EOF
}

pki_dir() { echo "$STACK_DIR/pki"; }

# A throwaway CA, a broker certificate for 127.0.0.1 and localhost signed by
# it, and the SCRAM users' passwords; made once per stack.
make_pki() {
  local pki
  pki=$(pki_dir)
  [[ -f $pki/.complete ]] && return 0
  rm -rf "$pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=cdr-stack test CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out broker.key 2>/dev/null
    openssl req -new -key broker.key -subj "/CN=localhost" -out broker.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile broker.ext -out broker.pem 2>/dev/null
    cat broker.key broker.pem >broker-keystore.pem
    for user in admin cdr auditor; do echo "pw-$(openssl rand -hex 16)" >"$user.password"; done
    chmod 600 ./*.key ./*.password broker-keystore.pem
  ) || die "could not make the stack's certificates (openssl)"
  touch "$pki/.complete"
}

# Sets JAVA_OPTS (an array) for node $1.
set_java_opts() {
  local n=$1 heap=512m
  ((KAFKA_NODES > 1)) && heap=384m
  JAVA_OPTS=("-Xmx$heap" -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$(node_dir "$n")/log4j2.properties"
    -cp "$KAFKA_LIBS/*")
}

format_kafka_node() {
  local n=$1 dir args
  dir=$(node_dir "$n")
  [[ -f $dir/data/meta.properties ]] && return 0
  args=(format -t "$CLUSTER_ID" -c "$dir/server.properties")
  ((KAFKA_NODES == 1)) && args+=(--standalone)
  if ((${SECURE_ENABLED:-0})); then
    local user
    for user in admin cdr auditor; do
      args+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(<"$(pki_dir)/$user.password")]")
    done
  fi
  # a short-lived tool: C1 only and serial GC start it ~1 s faster; its own
  # log lines go to format.log, not into the broker's log file
  if ! java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$dir/log4j2-tool.properties" -cp "$KAFKA_LIBS/*" \
    kafka.tools.StorageTool "${args[@]}" \
    >"$dir/format.log" 2>&1; then
    show_log "$dir/format.log"
    return 1
  fi
}

start_kafka_node() {
  local n=$1 dir pidfile pid i
  dir=$(node_dir "$n")
  pidfile=$dir/kafka.pid
  if pid=$(kafka_pid "$n"); then
    log "kafka node $n already running (pid $pid)"
    return 0
  fi
  rm -f "$pidfile"
  set_java_opts "$n"
  # setsid: own session, so no SIGHUP/SIGINT from the caller's terminal or
  # process group; the wrapper records the pid of the JVM it execs. The lock
  # fds are closed, or the JVM would hold the stack lock for its lifetime.
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
    java "${JAVA_OPTS[@]}" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/stdout.log" 2>&1 8>&- 9>&- &
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && break
    sleep 0.1
  done
  log "kafka node $n started (pid $(<"$pidfile"), $HOST:$(kafka_port "$n"))"
}

# Node ids listed in a metadata response from node $1 itself (empty if it
# does not answer). Asking each node directly matters after a restart: a
# killed node stays in the others' metadata until its session times out.
metadata_broker_ids() {
  if ((${SECURE_ENABLED:-0})); then
    # Debian's kcat (librdkafka 2.0.2) fails SCRAM-SHA-512 against Kafka 4
    # where newer librdkafka and the Java client succeed: ask with the Java
    # client, as the super user (a secured stack has one node).
    cmd_acl --list >/dev/null 2>&1 && echo 1
    return 0
  fi
  kcat -L -b "$HOST:$(kafka_port "$1")" -m 3 2>/dev/null |
    sed -n 's/^ *broker \([0-9]*\) at .*/\1/p' | sort -n | tr '\n' ' '
}

# wait_kafka_ready NODE...: polls real metadata requests until each NODE
# answers and lists every node of the stack that runs; fails fast if one of
# their JVMs died.
wait_kafka_ready() {
  local deadline=$(($(now) + KAFKA_READY_TIMEOUT)) n m ids expected=() missing
  for ((m = 1; m <= KAFKA_NODES; m++)); do
    kafka_pid "$m" >/dev/null && expected+=("$m")
  done
  while :; do
    missing=()
    for n in "$@"; do
      ids=" $(metadata_broker_ids "$n") "
      for m in "${expected[@]}"; do
        [[ $ids == *" $m "* ]] || { missing+=("$n"); break; }
      done
    done
    ((${#missing[@]} == 0)) && return 0
    for n in "${missing[@]}"; do
      if ! kafka_pid "$n" >/dev/null; then
        log "kafka node $n exited during startup"
        show_log "$(node_log "$n")"
        show_log "$(node_dir "$n")/stdout.log"
        return 1
      fi
    done
    if (($(now) >= deadline)); then
      log "kafka not ready after ${KAFKA_READY_TIMEOUT}s: nodes ${missing[*]} do not answer with all of ${expected[*]}"
      for n in "${missing[@]}"; do show_log "$(node_log "$n")"; done
      return 1
    fi
    sleep 0.5
  done
}

stop_kafka_node() {
  local n=$1 sig=${2:-TERM} pid
  if pid=$(kafka_pid "$n"); then
    log "stopping kafka node $n (pid $pid, SIG$sig)"
    stop_pid "$pid" "$KAFKA_STOP_TIMEOUT" "$sig"
  else
    log "kafka node $n is not running"
  fi
  rm -f "$(node_dir "$n")/kafka.pid"
}

check_node_arg() {
  if ! [[ ${1:-} =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > KAFKA_NODES)); then
    die "node must be 1..$KAFKA_NODES, got '${1:-}'"
  fi
}

# ==========================================================================
# SFTP (a private sshd; the system one and /etc/ssh are never touched)

sftp_dir() { echo "$STACK_DIR/sftp"; }
upload_dir() { echo "$(sftp_dir)/upload"; }
sshd_config() { echo "$(sftp_dir)/sshd_config"; }
sshd_log() { echo "$(sftp_dir)/sshd.log"; }
sshd_pid() { pid_of "$(sftp_dir)/sshd.pid" "$(sshd_config)"; }

ensure_sftp_user() {
  [[ $EUID -eq 0 ]] || die "the sftp server needs root (useradd, chown); use --no-sftp"
  if ! id "$SFTP_USER" >/dev/null 2>&1; then
    log "creating user $SFTP_USER"
    # nologin: the account only ever gets internal-sftp (ForceCommand below)
    useradd --create-home --user-group --shell /usr/sbin/nologin "$SFTP_USER" 2>/dev/null ||
      id "$SFTP_USER" >/dev/null 2>&1 || die "useradd $SFTP_USER failed"
  fi
  mkdir -p "$SFTP_SECRET_DIR"
  chmod 700 "$SFTP_SECRET_DIR"
  (
    flock 7
    local secret=$SFTP_SECRET_DIR/$SFTP_USER.password
    if [[ ! -s $secret ]]; then
      (umask 077; head -c 18 /dev/urandom | base64 | tr '+/' 'xy' >"$secret")
    fi
    # re-applied every time: cheap, and repairs a user recreated by hand
    printf '%s:%s\n' "$SFTP_USER" "$(<"$secret")" | chpasswd
  ) 7>"$SFTP_SECRET_DIR/.lock"
  install -m 600 "$SFTP_SECRET_DIR/$SFTP_USER.password" "$(sftp_dir)/password"
}

# The user must be able to reach the upload dir: add o+x (search only, not
# read) to every parent that lacks it, e.g. a mktemp -d (mode 700) STACK_DIR.
ensure_traversable() {
  local target=$1 d
  runuser -u "$SFTP_USER" -- test -x "$target" 2>/dev/null && return 0
  d=$target
  while [[ $d != / ]]; do
    if [[ -d $d ]] && ! runuser -u "$SFTP_USER" -- test -x "$d" 2>/dev/null; then
      log "chmod o+x $d (so $SFTP_USER can reach the upload dir)"
      chmod o+x "$d"
    fi
    d=$(dirname "$d")
  done
  runuser -u "$SFTP_USER" -- test -x "$target" || die "$SFTP_USER cannot reach $target"
}

# The secured stack's sshd is the documented production setting: keys only.
password_auth() {
  if ((${SECURE_ENABLED:-0})); then
    echo "PasswordAuthentication no"
  else
    echo "PasswordAuthentication yes"
  fi
}

write_sftp_files() {
  local dir
  dir=$(sftp_dir)
  mkdir -p "$dir" "$(upload_dir)"
  ensure_sftp_user
  chmod 755 "$STACK_DIR" "$dir"
  chown "$SFTP_USER:$SFTP_USER" "$(upload_dir)"
  chmod 755 "$(upload_dir)"
  ensure_traversable "$(upload_dir)"
  [[ -f $dir/ssh_host_ed25519_key ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "cdr-stack-host" -f "$dir/ssh_host_ed25519_key"
  [[ -f $dir/id_ed25519 ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "cdr-stack-client" -f "$dir/id_ed25519"
  install -m 644 "$dir/id_ed25519.pub" "$dir/authorized_keys"
  echo "[$HOST]:$SFTP_PORT $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"
  cat >"$(sshd_config)" <<EOF
# generated by scripts/stack.sh: a throwaway sftp server for tests
Port $SFTP_PORT
ListenAddress $HOST
HostKey "$dir/ssh_host_ed25519_key"
PidFile "$dir/sshd.pid"
AllowUsers $SFTP_USER
PermitRootLogin no
PubkeyAuthentication yes
AuthorizedKeysFile "$dir/authorized_keys"
# the stack dir may sit in a tree sshd would find too open; the keys are throwaway
StrictModes no
$(password_auth)
KbdInteractiveAuthentication no
# without PAM sshd checks /etc/shadow itself: no PAM session/account trouble
UsePAM no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
# tests open many connections in a burst
MaxStartups 100:30:200
MaxSessions 50
LogLevel INFO
EOF
}

start_sshd() {
  local pid out
  if pid=$(sshd_pid); then
    log "sshd already running (pid $pid)"
    return 0
  fi
  mkdir -p /run/sshd # privilege separation dir, absent on machines without a system sshd
  chmod 755 /run/sshd
  out=$(/usr/sbin/sshd -t -f "$(sshd_config)" 2>&1) || die "sshd config invalid: $out"
  /usr/sbin/sshd -f "$(sshd_config)" -E "$(sshd_log)" 8>&- 9>&- || {
    show_log "$(sshd_log)"
    die "sshd failed to start"
  }
  log "sshd started ($HOST:$SFTP_PORT)"
}

# Ready when ssh-keyscan gets our own host key back.
wait_sshd_ready() {
  local deadline=$(($(now) + SSHD_READY_TIMEOUT)) want
  want=$(cut -d' ' -f2 "$(sftp_dir)/ssh_host_ed25519_key.pub")
  while :; do
    if ssh-keyscan -T 2 -t ed25519 -p "$SFTP_PORT" "$HOST" 2>/dev/null | grep -qF -- "$want"; then
      return 0
    fi
    if (($(now) >= deadline)); then
      log "sshd not ready after ${SSHD_READY_TIMEOUT}s"
      show_log "$(sshd_log)"
      return 1
    fi
    sleep 0.2
  done
}

stop_sshd() {
  local pid children
  if pid=$(sshd_pid); then
    # the listener's children are the open sessions: end them too, so a stop
    # looks like a server outage to connected clients
    children=$(pgrep -P "$pid" || true)
    log "stopping sshd (pid $pid)"
    stop_pid "$pid" 10
    for pid in $children; do stop_pid "$pid" 5; done
  else
    log "sshd is not running"
  fi
  rm -f "$(sftp_dir)/sshd.pid"
}

# ==========================================================================
# schema registry (Apicurio Registry, the Quarkus build from Maven Central)

registry_dir() { echo "$STACK_DIR/registry"; }
registry_log() { echo "$(registry_dir)/registry.log"; }
registry_pid() { pid_of "$(registry_dir)/registry.pid" "quarkus.http.port=$REGISTRY_PORT"; }
registry_url() { echo "http://$HOST:$REGISTRY_PORT/apis/ccompat/v7"; }

# The newest JDK of this machine that is 21 or later (Apicurio 3 needs it;
# the brokers keep the default java).
registry_java() {
  local j v best='' best_v=0
  for j in /usr/lib/jvm/*/bin/java; do
    [[ -x $j ]] || continue
    v=$("$j" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    [[ $v =~ ^[0-9]+$ ]] && ((v >= 21 && v > best_v)) && { best=$j; best_v=$v; }
  done
  [[ -n $best ]] || die "the schema registry needs Java 21 or later: none in /usr/lib/jvm (this machine kind has temurin-25-jdk-amd64)"
  echo "$best"
}

ensure_registry_app() {
  local tmp
  [[ -f $REGISTRY_APP/.complete ]] && return 0
  mkdir -p "$(dirname "$REGISTRY_APP")"
  exec 8>"$REGISTRY_APP.lock"
  flock 8
  if [[ -f $REGISTRY_APP/.complete ]]; then exec 8>&-; return 0; fi
  log "downloading Apicurio Registry $REGISTRY_VERSION into $REGISTRY_APP (first run only)"
  tmp=$(mktemp -d "$REGISTRY_APP.tmp.XXXXXX")
  if ! mvn -q -B dependency:copy \
    -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
    -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    show_log "$tmp.log"
    rm -rf "$tmp"
    die "mvn could not fetch the Apicurio Registry"
  fi
  tar -xzf "$tmp"/apicurio-registry-app-*.tar.gz -C "$tmp"
  rm -f "$tmp"/apicurio-registry-app-*.tar.gz "$tmp.log"
  touch "$tmp/.complete"
  rm -rf "$REGISTRY_APP"
  mv "$tmp" "$REGISTRY_APP"
  exec 8>&-
}

start_registry() {
  local pid java
  if pid=$(registry_pid); then
    log "schema registry already running (pid $pid)"
    return 0
  fi
  java=$(registry_java)
  mkdir -p "$(registry_dir)"
  # Both the API and the management port on loopback: the management port
  # would otherwise bind 0.0.0.0:9000 and collide between stacks.
  (cd "$(registry_dir)" && exec setsid "$java" -Xmx512m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
    "-Dquarkus.http.host=$HOST" "-Dquarkus.http.port=$REGISTRY_PORT" \
    "-Dquarkus.management.host=$HOST" "-Dquarkus.management.port=$REGISTRY_MPORT" \
    -jar "$REGISTRY_APP/quarkus-run.jar" >"$(registry_log)" 2>&1 8>&- 9>&- </dev/null &
    echo $! >"$(registry_dir)/registry.pid")
  log "schema registry starting ($(registry_url))"
}

wait_registry_ready() {
  local deadline=$(($(now) + REGISTRY_READY_TIMEOUT))
  until curl -sf -o /dev/null "$(registry_url)/subjects"; do
    if (($(now) >= deadline)) || ! registry_pid >/dev/null; then
      log "schema registry not ready after ${REGISTRY_READY_TIMEOUT}s"
      show_log "$(registry_log)"
      return 1
    fi
    sleep 0.5
  done
}

stop_registry() {
  local pid
  if pid=$(registry_pid); then
    log "stopping schema registry (pid $pid)"
    stop_pid "$pid" 20
  else
    log "schema registry is not running"
  fi
  rm -f "$(registry_dir)/registry.pid"
}

# ==========================================================================
# commands

cmd_up() {
  local nodes=1 sftp=1 kafka=1 registry=0 secure=0 n t0
  while (($#)); do
    case $1 in
      --kafka-nodes) (($# >= 2)) || die "--kafka-nodes needs a value"; nodes=$2; shift 2 ;;
      --kafka-nodes=*) nodes=${1#*=}; shift ;;
      --no-sftp) sftp=0; shift ;;
      --no-kafka) kafka=0; shift ;;
      --schema-registry) registry=1; shift ;;
      --secure) secure=1; shift ;;
      *) die "unknown option for up: $1" ;;
    esac
  done
  [[ $nodes == 1 || $nodes == 3 ]] || die "--kafka-nodes must be 1 or 3"
  ((secure == 0 || nodes == 1)) || die "--secure runs one Kafka node"
  ((kafka)) || nodes=0
  t0=$(now)

  "$SCRIPT_DIR/bootstrap.sh"
  lock_stack
  STACK_DIR=$(cd "$STACK_DIR" && pwd) # absolute: it ends up in configs

  if [[ -f $(state_file) ]]; then
    load_state
    [[ $KAFKA_NODES == "$nodes" && $SFTP_ENABLED == "$sftp" && ${REGISTRY_ENABLED:-0} == "$registry" && ${SECURE_ENABLED:-0} == "$secure" ]] ||
      die "$STACK_DIR already holds a stack with kafka nodes=$KAFKA_NODES sftp=$SFTP_ENABLED schema registry=${REGISTRY_ENABLED:-0} secure=${SECURE_ENABLED:-0}; run down first"
  else
    KAFKA_NODES=$nodes SFTP_ENABLED=$sftp REGISTRY_ENABLED=$registry SECURE_ENABLED=$secure CLUSTER_ID='' SFTP_PORT='' REGISTRY_PORT='' REGISTRY_MPORT=''
    for ((n = 1; n <= KAFKA_NODES; n++)); do
      claim_port; printf -v "KAFKA_PORT_$n" %s "$REPLY"
      claim_port; printf -v "KAFKA_CPORT_$n" %s "$REPLY"
    done
    ((KAFKA_NODES)) && CLUSTER_ID=$(random_cluster_id)
    if ((SFTP_ENABLED)); then claim_port; SFTP_PORT=$REPLY; fi
    if ((REGISTRY_ENABLED)); then claim_port; REGISTRY_PORT=$REPLY; claim_port; REGISTRY_MPORT=$REPLY; fi
    save_state
  fi

  if ((KAFKA_NODES)); then
    ensure_kafka_libs
    ((SECURE_ENABLED)) && make_pki
    for ((n = 1; n <= KAFKA_NODES; n++)); do write_kafka_config "$n"; done
    # one JVM per node: format them in parallel
    local pids=() failed=0
    for ((n = 1; n <= KAFKA_NODES; n++)); do format_kafka_node "$n" & pids+=($!); done
    for n in "${pids[@]}"; do wait "$n" || failed=1; done
    ((failed == 0)) || die "kafka storage format failed"
    for ((n = 1; n <= KAFKA_NODES; n++)); do start_kafka_node "$n"; done
  fi
  # sftp and the registry come up while the brokers boot
  if ((REGISTRY_ENABLED)); then
    ensure_registry_app
    start_registry
  fi
  if ((SFTP_ENABLED)); then
    write_sftp_files
    start_sshd
    wait_sshd_ready || exit 1
    log "sftp ready: $SFTP_USER@$HOST:$SFTP_PORT, upload dir $(upload_dir)"
  fi
  if ((KAFKA_NODES)); then
    wait_kafka_ready $(seq 1 "$KAFKA_NODES") || exit 1
    log "kafka ready: $(brokers)"
  fi
  if ((REGISTRY_ENABLED)); then
    wait_registry_ready || exit 1
    log "schema registry ready: $(registry_url)"
  fi
  log "stack up in $(($(now) - t0))s ($STACK_DIR); eval \"\$(scripts/stack.sh env)\""
}

cmd_down() {
  [[ -f $STACK_DIR/stack.state ]] || { log "no stack in $STACK_DIR"; return 0; }
  lock_stack
  load_state
  local n pid pids=()
  ((SFTP_ENABLED)) && stop_sshd
  ((${REGISTRY_ENABLED:-0})) && stop_registry
  # all nodes at once: stopping a quorum one by one stalls the last ones
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    if pid=$(kafka_pid "$n"); then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  for pid in ${pids[@]+"${pids[@]}"}; do stop_pid "$pid" 20; done
  # shellcheck disable=SC2046 # ports are plain numbers
  release_ports $(all_ports)
  # the dir itself and its .lock stay: a concurrent command may wait on that lock
  rm -rf "$STACK_DIR/kafka" "$STACK_DIR/sftp" "$STACK_DIR/registry" "$STACK_DIR/pki" \
    "$STACK_DIR/admin-client.properties" "$STACK_DIR/stack.state" "$STACK_DIR"/.state.*
  log "stack in $STACK_DIR is down"
}

cmd_status() {
  load_state
  local n pid rc=0
  echo "stack dir: $STACK_DIR"
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    if pid=$(kafka_pid "$n"); then
      echo "kafka node $n: running pid $pid on $HOST:$(kafka_port "$n") (controller $HOST:$(kafka_cport "$n"))"
    else
      echo "kafka node $n: stopped ($HOST:$(kafka_port "$n"))"; rc=1
    fi
  done
  if ((SFTP_ENABLED)); then
    if pid=$(sshd_pid); then
      echo "sshd: running pid $pid on $HOST:$SFTP_PORT"
    else
      echo "sshd: stopped ($HOST:$SFTP_PORT)"; rc=1
    fi
  fi
  if ((${REGISTRY_ENABLED:-0})); then
    if pid=$(registry_pid); then
      echo "schema registry: running pid $pid at $(registry_url)"
    else
      echo "schema registry: stopped ($(registry_url))"; rc=1
    fi
  fi
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    kafka_pid "$n" >/dev/null && echo "node $n sees brokers: $(metadata_broker_ids "$n")"
  done
  return $rc
}

cmd_env() {
  load_state
  local n logs=()
  emit() {
    # plain when only harmless characters (readable, and parseable without a
    # shell); printf %q otherwise
    if [[ $2 =~ ^[A-Za-z0-9_./:,@%+=-]+$ ]]; then
      printf 'export %s=%s\n' "$1" "$2"
    else
      printf 'export %s=%q\n' "$1" "$2"
    fi
  }
  emit STACK_DIR "$STACK_DIR"
  if ((KAFKA_NODES)); then
    for ((n = 1; n <= KAFKA_NODES; n++)); do logs+=("$(node_log "$n")"); done
    emit KAFKA_BROKERS "$(brokers)"
    emit KAFKA_NODES "$KAFKA_NODES"
    emit KAFKA_LOG_FILE "${logs[0]}"
    emit KAFKA_LOG_FILES "$(IFS=,; echo "${logs[*]}")"
    # What the service's topics can hold here: its default (3) needs 3 brokers.
    emit CDR_TOPIC_REPLICATION "$((KAFKA_NODES < 3 ? KAFKA_NODES : 3))"
    if ((${SECURE_ENABLED:-0})); then
      local pki
      pki=$(pki_dir)
      # The service's own user, as the librdkafka settings it reads.
      emit KAFKA_CONFIG_SECURITY_PROTOCOL SASL_SSL
      emit KAFKA_CONFIG_SASL_MECHANISM SCRAM-SHA-512
      emit KAFKA_CONFIG_SASL_USERNAME cdr
      emit KAFKA_CONFIG_SASL_PASSWORD "$(<"$pki/cdr.password")"
      emit KAFKA_CONFIG_SSL_CA_LOCATION "$pki/ca.pem"
      # The super user, for the stack's own tools and the tests' checks.
      emit KAFKA_ADMIN_USER admin
      emit KAFKA_ADMIN_PASSWORD "$(<"$pki/admin.password")"
      emit KAFKA_AUDITOR_PASSWORD "$(<"$pki/auditor.password")"
      emit KAFKA_CA_FILE "$pki/ca.pem"
    fi
  fi
  if ((SFTP_ENABLED)); then
    emit SFTP_HOST "$HOST"
    emit SFTP_PORT "$SFTP_PORT"
    emit SFTP_USER "$SFTP_USER"
    emit SFTP_KEY_FILE "$(sftp_dir)/id_ed25519"
    if ((${SECURE_ENABLED:-0})); then
      # Keys only, and the host key pinned by its fingerprint.
      emit SFTP_HOST_KEY_FINGERPRINT "$(ssh-keygen -lf "$(sftp_dir)/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
    else
      emit SFTP_PASSWORD "$(<"$(sftp_dir)/password")"
      emit SFTP_KNOWN_HOSTS "$(sftp_dir)/known_hosts"
    fi
    emit SFTP_REMOTE_PATH "$(upload_dir)"
    emit SFTP_UPLOAD_DIR "$(upload_dir)"
    emit SFTP_LOG_FILE "$(sshd_log)"
  fi
  if ((${REGISTRY_ENABLED:-0})); then
    emit SCHEMA_REGISTRY_URL "$(registry_url)"
    emit SCHEMA_REGISTRY_LOG_FILE "$(registry_log)"
  fi
}

# kafka-acls against node 1 as the super user: `acl --add --allow-principal
# User:cdr --operation Write --topic cdr-data`, `acl --list`.
cmd_acl() {
  load_state
  ((${SECURE_ENABLED:-0})) || die "acl needs a stack started with --secure"
  local pki props
  pki=$(pki_dir)
  props=$STACK_DIR/admin-client.properties
  cat >"$props" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(<"$pki/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$pki/ca.pem
EOF
  chmod 600 "$props"
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$(node_dir 1)/log4j2-tool.properties" -cp "$KAFKA_LIBS/*" \
    org.apache.kafka.tools.AclCommand --bootstrap-server "$HOST:$(kafka_port 1)" \
    --command-config "$props" "$@"
}

cmd_kafka_stop() { lock_stack; load_state; check_node_arg "${1:-}"; stop_kafka_node "$1" TERM; }
cmd_kafka_kill() { lock_stack; load_state; check_node_arg "${1:-}"; stop_kafka_node "$1" KILL; }

cmd_kafka_start() {
  lock_stack
  load_state
  check_node_arg "${1:-}"
  start_kafka_node "$1"
  wait_kafka_ready "$1" || exit 1
  log "kafka node $1 ready"
}

cmd_sshd_stop() { lock_stack; load_state; ((SFTP_ENABLED)) || die "no sftp in this stack"; stop_sshd; }

cmd_sshd_start() {
  lock_stack
  load_state
  ((SFTP_ENABLED)) || die "no sftp in this stack"
  start_sshd
  wait_sshd_ready || exit 1
}

cmd_registry_stop() { lock_stack; load_state; ((${REGISTRY_ENABLED:-0})) || die "no schema registry in this stack"; stop_registry; }

cmd_registry_start() {
  lock_stack
  load_state
  ((${REGISTRY_ENABLED:-0})) || die "no schema registry in this stack"
  start_registry
  wait_registry_ready || exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  # absolute from the start, so that a relative STACK_DIR means the same everywhere
  [[ $STACK_DIR == /* ]] || STACK_DIR=$PWD/$STACK_DIR
  [[ -d $STACK_DIR ]] && STACK_DIR=$(cd "$STACK_DIR" && pwd)
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    acl) cmd_acl "$@" ;;
    kafka-stop) cmd_kafka_stop "$@" ;;
    kafka-kill) cmd_kafka_kill "$@" ;;
    kafka-start) cmd_kafka_start "$@" ;;
    sshd-stop) cmd_sshd_stop ;;
    sshd-start) cmd_sshd_start ;;
    registry-stop) cmd_registry_stop ;;
    registry-start) cmd_registry_start ;;
    -h | --help | help) usage 0 ;;
    *) usage 1 >&2 ;;
  esac
}

main "$@"
