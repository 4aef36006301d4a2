#!/usr/bin/env bash
# End-to-end benchmark against the original Python streamer, in one run, on
# one machine, over the same files on the same SFTP server and broker:
#
#   1. cdr-to-redpanda `once`, exactly-once transactions (the default);
#   1b. the same with `--format json-typed` and `--format avro` (Confluent
#      wire format under the stack's Apicurio registry): the cost of typed
#      records, and the bytes each format stores on the broker per row;
#   2. cdr-to-redpanda `once --transactions false` (idempotent producer only),
#      to show what exactly-once costs, `once --read-ahead true`, to show
#      what downloading each slot's next file during its current one does
#      with two files in flight, and `once --workers 1 --read-ahead true`
#      (eos1), one file at a time: the defaults before two files in flight,
#      and `once --local-dir` over the same files (local), which reads them
#      from the disk as the ceiling reads its records: the cost of SFTP;
#   3. the ceiling (examples/ceiling_producer.rs): the records our encoder
#      makes from the same files (keys, values, headers, timestamps), written
#      once to a local file outside the timed region, then produced by a
#      plain idempotent librdkafka producer with the service's own producer
#      settings: the most a librdkafka producer pushes through this broker on
#      this machine. The others' rows/s are reported as a percentage of it;
#   4. the Python streamer (bench/python/main.py, from its guide; kafka-python
#      + paramiko from PyPI in a virtualenv), pointed at the same stack;
#   5. the scale column: `run --group` daemons sharing the directory through
#      a consumer group (each with its own ledger, all on this machine):
#      group1, group2, group3 are 1, 2 and 3 instances with 2 files in
#      flight each (`--workers 2`), group1x4 one instance with 4, all with
#      64 shards; group1s256 is group1 with 256 shards. Timed from
#      their start (so the group join and the takeover of the shards count)
#      until their logs together say every file is committed; then SIGTERM.
#      CPU and peak RSS are per instance; the broker shares the same cores,
#      so more instances here cannot add throughput: the CPU per row and the
#      throughput per instance are the figures that carry to real hosts.
#
# Each writes into topics of its own (12 partitions). Figures per contender:
# wall time, rows/s, MB/s of CSV, peak RSS and CPU seconds (/usr/bin/time -v),
# the bytes its topics' log segments hold on the broker per row,
# the broker's CPU seconds over the run (its JVM's utime + stime from
# /proc/<pid>/stat, before and after), and the records in its output topics
# counted by kcat with
# isolation.level=read_committed against what the workload holds: a run that
# lost or duplicated a record gets no throughput figure. Then a flat-memory
# check: cdr-to-redpanda on one file of 10,000 rows and one of RSS_ROWS rows.
#
#   scripts/bench.sh                       # 20 data + 20 voice files of 50,000 rows (2M rows)
#   FILES=100 ROWS=50000 scripts/bench.sh  # the 10M-row workload of issue 7
#
# Environment: FILES (per kind, 20), ROWS (per file, 50000), BAD_RATE (0.01),
# PARTITIONS (12), RSS_ROWS (1000000), CONTENDERS (eos,eos1,local,typed,avro,ahead,plain,ceiling,group1,
# group2,group3,group1x4,group1s256,python: any subset, in that order; `base` as well
# with BASE_REV), BASE_REV (a git revision: built beside this tree and run as
# the contender `base`, `once` exactly-once like `eos`, for a before/after in
# one run), REPEAT (3: rounds of cdr-to-redpanda's runs, the
# best of each reported; the Python streamer runs once), MICRO=0 to skip the micro-benchmarks (cargo bench
# parse_encode, the ledger's cost per transaction, and the cost of a poll over POLL_FILES already
# ingested files: 0,10000,100000), BENCH_STACK_DIR
# (<repo>/.stack-bench), KEEP_STACK=1 to leave the stack running. Everything else (bootstrap, the stack, the
# release build, the virtualenv) is set up here, so it runs from a fresh clone.
#
# Prints the table with ratios to the Python streamer and writes it to
# bench/results/latest.csv and latest.json, the scale table to
# latest-scale.csv (micro-benchmarks:
# latest-micro.txt); logs stay in the run directory.
# The broker runs on the same cores as the contenders: compare ratios from one
# run, not figures from different machines or runs.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
FILES=${FILES:-20}
ROWS=${ROWS:-50000}
BAD_RATE=${BAD_RATE:-0.01}
PARTITIONS=${PARTITIONS:-12}
RSS_ROWS=${RSS_ROWS:-1000000}
CONTENDERS=${CONTENDERS:-eos,eos1,local,typed,avro,ahead,plain,ceiling,group1,group2,group3,group1x4,group1s256,python}
REPEAT=${REPEAT:-3}
SEED=7
export STACK_DIR=${BENCH_STACK_DIR:-$REPO_DIR/.stack-bench}
VENV=$REPO_DIR/.cache/bench-venv
BIN=${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/cdr-to-redpanda
CEILING=${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/examples/ceiling_producer

log() { printf '== %s\n' "$*" >&2; }

scripts/bootstrap.sh
if [[ ${KEEP_STACK:-0} != 1 ]]; then
  trap 'scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
fi
scripts/stack.sh up --schema-registry
eval "$(scripts/stack.sh env)"

log "building (release)"
cargo build --release --quiet --bin cdr-to-redpanda --example ceiling_producer

if [[ -n ${BASE_REV:-} ]]; then
  base_rev=$(git rev-parse --short "$BASE_REV")
  base_src=$REPO_DIR/.cache/bench-base-src
  log "building $base_rev (release) in $base_src, for the contender base"
  rm -rf "$base_src"
  mkdir -p "$base_src"
  git archive "$base_rev" | tar -x -C "$base_src"
  CARGO_TARGET_DIR=$REPO_DIR/.cache/bench-base-target \
    cargo build --release --quiet --bin cdr-to-redpanda --manifest-path "$base_src/Cargo.toml"
  BASE_BIN=$REPO_DIR/.cache/bench-base-target/release/cdr-to-redpanda
fi

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import kafka, paramiko' 2>/dev/null; then
  log "virtualenv for the Python streamer ($VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/python/requirements.txt
fi

run_id=$(date -u +%Y%m%dT%H%M%S)
RUN_DIR=$STACK_DIR/bench-runs/$run_id
mkdir -p "$RUN_DIR"
WORK=bench-$run_id
work_dir=$SFTP_UPLOAD_DIR/$WORK
records=$RUN_DIR/ceiling.records
remove_workload() { rm -rf "$work_dir" "$SFTP_UPLOAD_DIR/$WORK-rss-"* "$records"; }

log "workload: $FILES data + $FILES voice files of $ROWS rows, bad rate $BAD_RATE, into $work_dir"
"$BIN" generate --out "$work_dir" --files "$FILES" --rows "$ROWS" --seed "$SEED" --bad-rate "$BAD_RATE" \
  >"$RUN_DIR/generated.json"
python3 bench/workload.py "$RUN_DIR/generated.json" "$work_dir" >"$RUN_DIR/expected.json"
chown -R "$SFTP_USER:" "$work_dir"
expect() { python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, e))' "$RUN_DIR/expected.json" "$1"; }

# Bytes the broker's log segments hold for topics $@ (all partitions).
stored() {
  local t total=0 n
  for t in "$@"; do
    n=$(find "$STACK_DIR/kafka" -path "*/$t-[0-9]*/*.log" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    total=$((total + n))
  done
  echo "$total"
}

# Records in a topic as a read_committed consumer sees them.
count() {
  kcat -C -b "$KAFKA_BROKERS" -t "$1" -o beginning -e -q -X isolation.level=read_committed -f '\n' | wc -l
}

# The broker's JVM: its CPU time is read before and after every run.
BROKER_PID=$(scripts/stack.sh status | sed -n 's/^kafka node 1: running pid \([0-9]*\).*/\1/p')
[[ -n $BROKER_PID ]] || { echo "no broker pid in scripts/stack.sh status" >&2; exit 1; }
CLK_TCK=$(getconf CLK_TCK)
# utime + stime of the broker so far, in clock ticks (fields 14 and 15 of
# /proc/<pid>/stat; counted after the command name, which may hold spaces).
broker_ticks() { sed 's/.*) //' "/proc/$BROKER_PID/stat" | awk '{print $12 + $13}'; }

# Waits (at most 15 s) until the broker is idle: under 10 % of a core over
# half a second. A broker still busy with the previous run's aftermath (log
# flushes, garbage collection) would otherwise slow whichever run follows.
quiet_broker() {
  local i b0
  for ((i = 0; i < 30; i++)); do
    b0=$(broker_ticks)
    sleep 0.5
    (( ($(broker_ticks) - b0) * 100 < CLK_TCK * 5 )) && return 0
  done
}

# Runs "$@" under /usr/bin/time -v; sets WALL (seconds), RC and BROKER_CPU
# (the broker's CPU seconds meanwhile).
timed() {
  local name=$1 t0 t1 b0 b1
  shift
  b0=$(broker_ticks)
  t0=$(date +%s.%N)
  set +e
  /usr/bin/time -v -o "$RUN_DIR/$name.time" "$@" >"$RUN_DIR/$name.log" 2>&1
  RC=$?
  set -e
  t1=$(date +%s.%N)
  b1=$(broker_ticks)
  WALL=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  BROKER_CPU=$(python3 -c "print(f'{($b1 - $b0) / $CLK_TCK:.2f}')")
}

# The service's topic settings for contender run $1 (a tag): topics of its own.
topic_env() {
  local prefix=bench-$run_id-$1
  TOPIC_ENV=(CDR_DATA_TOPIC="$prefix-data" CDR_VOICE_TOPIC="$prefix-voice"
    CDR_DLQ_TOPIC="$prefix-dlq" CDR_CHECKPOINT_TOPIC="$prefix-checkpoints"
    CDR_TOPIC_REPLICATION=1 CDR_TOPIC_PARTITIONS="$PARTITIONS")
}

if [[ ,$CONTENDERS, == *,ceiling,* ]]; then
  log "ceiling: encoding the workload into $records (not timed)"
  "$CEILING" encode "$work_dir" "$records" >"$RUN_DIR/ceiling-encode.json"
  # A broker started minutes ago still compiles its hot paths (JIT): one
  # untimed pass of the records warms it, so the first timed contender does
  # not pay for that alone.
  log "warming the broker up (not timed)"
  topic_env warmup
  env "${TOPIC_ENV[@]}" "$CEILING" topics
  env "${TOPIC_ENV[@]}" "$CEILING" produce "$records" >"$RUN_DIR/warmup.log" 2>&1
fi

# cdr-to-redpanda `once` over $2 (a directory under the upload dir) into
# topics and a ledger of its own; extra flags after. RUN_BIN (default: this
# tree's build) is the binary.
run_ours() {
  local tag=$1 dir=$2
  shift 2
  topic_env "$tag"
  # Created before the timed region, as the ceiling's are: a topic created a
  # moment before its first records slows them (new partitions' leaders and
  # logs), which a running deployment never pays. The service still checks
  # them at its start, timed.
  env "${TOPIC_ENV[@]}" "$CEILING" topics
  timed "$tag" env "${TOPIC_ENV[@]}" \
    CDR_TRANSACTIONAL_ID_PREFIX="bench-$run_id-$tag" CDR_LEDGER_DIR="$RUN_DIR/ledger-$tag" \
    CDR_SETTLE_SECONDS=0 CDR_MIN_AGE_SECONDS=0 SFTP_REMOTE_PATH="$SFTP_REMOTE_PATH/$dir" \
    "${RUN_BIN:-$BIN}" once "$@"
}

# The transactional paths (transaction coordinator, markers, the checkpoint
# topic's first writes) are warmed by one untimed pass of the service itself,
# or the first exactly-once run of the round pays for them alone (9.7 s
# against 6.3 s in the run of 2026-12-05T20:30Z).
log "warming the broker's transactional paths up (not timed)"
run_ours warmup-eos "$WORK"

# N (`$2`) `run --group` daemons with `--workers $3` and `$4` shards over $WORK, each with a
# ledger of its own, timed from their start until their logs together count
# every file of the workload as committed (or 900 s); then SIGTERM (each
# commits and exits 0). Sets WALL, RC (0 only if every instance exited 0 after
# finishing), BROKER_CPU and TIMEFILES (the instances' time -v files, by commas).
run_group() {
  local tag=$1 instances=$2 workers=$3 shards=$4 i t0 t1 b0 b1 committed
  local files=$((2 * FILES)) group=bench-$run_id-$1
  topic_env "$tag"
  env "${TOPIC_ENV[@]}" "$CEILING" topics
  local pids=() timefiles=() logs=()
  b0=$(broker_ticks)
  t0=$(date +%s.%N)
  for ((i = 1; i <= instances; i++)); do
    timefiles+=("$RUN_DIR/$tag-$i.time")
    logs+=("$RUN_DIR/$tag-$i.log")
    env "${TOPIC_ENV[@]}" CDR_TRANSACTIONAL_ID_PREFIX="$group" CDR_LEDGER_DIR="$RUN_DIR/ledger-$tag-$i" \
      CDR_GROUP="$group" CDR_GROUP_TOPIC="$group-shards" CDR_GROUP_SHARDS="$shards" CDR_WORKERS="$workers" CDR_POLL_INTERVAL_SECONDS=1 \
      CDR_SETTLE_SECONDS=0 CDR_MIN_AGE_SECONDS=0 SFTP_REMOTE_PATH="$SFTP_REMOTE_PATH/$WORK" \
      /usr/bin/time -v -o "$RUN_DIR/$tag-$i.time" "$BIN" run >"$RUN_DIR/$tag-$i.log" 2>&1 &
    pids+=($!)
  done
  RC=0
  local until=$((SECONDS + 900))
  while :; do
    committed=$(cat "${logs[@]}" | grep -c 'ingest committed' || true)
    ((committed >= files)) && break
    for p in "${pids[@]}"; do
      kill -0 "$p" 2>/dev/null || { log "an instance of $tag exited early (see ${logs[*]})"; RC=1; }
    done
    ((RC == 0)) || break
    if ((SECONDS >= until)); then
      log "$tag: not every file committed within 900 s"
      RC=124
      break
    fi
    sleep 0.2
  done
  t1=$(date +%s.%N)
  b1=$(broker_ticks)
  # /usr/bin/time does not forward signals: its child, the daemon, gets them.
  for p in "${pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; done
  local status
  for p in "${pids[@]}"; do
    status=0
    wait "$p" || status=$?
    ((RC != 0)) || RC=$status
  done
  WALL=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  BROKER_CPU=$(python3 -c "print(f'{($b1 - $b0) / $CLK_TCK:.2f}')")
  TIMEFILES=$(IFS=,; echo "${timefiles[*]}")
}

# Other work on the machine slows every contender: the load is recorded.
load_start=$(cut -d' ' -f1 /proc/loadavg)
: >"$RUN_DIR/runs.tsv"
# Rounds of all contenders, so that a burst of load elsewhere hits one run of
# each rather than all runs of one; the report keeps each one's best. The
# Python streamer takes minutes and runs once: its share of such bursts is
# small against its own time.
# Each round starts one contender further along the list: a place in the
# round (after which contender, how long since the broker started) weighs
# on every contender alike.
runs=()
read -ra order <<<"${CONTENDERS//,/ }"
for ((round = 1; round <= REPEAT; round++)); do
  for ((i = 0; i < ${#order[@]}; i++)); do
    contender=${order[(i + round - 1) % ${#order[@]}]}
    [[ $contender == python && $round -gt 1 ]] || runs+=("$contender-$round")
  done
done
for tag in "${runs[@]}"; do
  quiet_broker
  contender=${tag%-*}
  # Instances and files in flight per instance, for the scale table.
  shape=("" "")
  case $contender in
    eos | eos1 | local | typed | avro | ahead | plain | base)
      run_bin=$BIN
      case $contender in
        # The defaults: 2 files in flight, one committing while the other produces.
        eos) name="cdr-to-redpanda (exactly-once)" flags=() shape=(1 2) ;;
        # The baseline of the scale table, and the defaults before two files in
        # flight: one file at a time (idle on each commit), the next one read ahead.
        eos1) name="cdr-to-redpanda (exactly-once, 1 file at a time)" flags=(--workers 1 --read-ahead true) shape=(1 1) ;;
        # The same files read from the local disk, as the ceiling reads its
        # records: what the SFTP transport (SSH on the same two cores) costs.
        local) name="cdr-to-redpanda (exactly-once, local directory)" flags=(--local-dir "$work_dir") ;;
        typed) name="cdr-to-redpanda (exactly-once, json-typed)" flags=(--format json-typed) ;;
        avro) name="cdr-to-redpanda (exactly-once, avro)" flags=(--format avro) ;;
        ahead) name="cdr-to-redpanda (exactly-once, read-ahead)" flags=(--read-ahead true) ;;
        plain) name="cdr-to-redpanda (transactions off)" flags=(--transactions false) ;;
        base)
          [[ -n ${BASE_BIN:-} ]] || { echo "the contender base needs BASE_REV" >&2; exit 2; }
          name="cdr-to-redpanda @$base_rev (exactly-once)" flags=() run_bin=$BASE_BIN
          ;;
      esac
      log "$name"
      RUN_BIN=$run_bin run_ours "$tag" "$WORK" "${flags[@]}"
      timefile=$RUN_DIR/$tag.time
      prefix=bench-$run_id-$tag
      counted=$(( $(count "$prefix-data") + $(count "$prefix-voice") + $(count "$prefix-dlq") ))
      want=$(expect 'valid_data + valid_voice + invalid')
      ;;
    ceiling)
      name="ceiling (librdkafka, pre-encoded)"
      log "$name"
      topic_env "$tag"
      env "${TOPIC_ENV[@]}" "$CEILING" topics
      timed "$tag" env "${TOPIC_ENV[@]}" "$CEILING" produce "$records"
      timefile=$RUN_DIR/$tag.time
      prefix=bench-$run_id-$tag
      counted=$(( $(count "$prefix-data") + $(count "$prefix-voice") + $(count "$prefix-dlq") ))
      want=$(expect 'valid_data + valid_voice + invalid')
      ;;
    python)
      name="Python streamer (kafka-python)"
      log "$name"
      prefix=bench-$run_id-$tag
      "$VENV/bin/python" bench/create_topics.py "$KAFKA_BROKERS" "$PARTITIONS" "$prefix-data" "$prefix-voice"
      mkdir -p "$RUN_DIR/python"
      # Its processed_files.txt goes into its working directory: a fresh one.
      (cd "$RUN_DIR/python" && timed "$tag" env SFTP_HOST="$SFTP_HOST" SFTP_PORT="$SFTP_PORT" \
        SFTP_USER="$SFTP_USER" SFTP_PASSWORD="$SFTP_PASSWORD" SFTP_REMOTE_PATH="$SFTP_REMOTE_PATH/$WORK" \
        KAFKA_BROKERS="$KAFKA_BROKERS" CDR_DATA_TOPIC="$prefix-data" CDR_VOICE_TOPIC="$prefix-voice" \
        "$VENV/bin/python" "$REPO_DIR/bench/python/main.py"
        printf '%s\t%s\t%s\n' "$WALL" "$RC" "$BROKER_CPU" >"$RUN_DIR/$tag.wall")
      read -r WALL RC BROKER_CPU <"$RUN_DIR/$tag.wall"
      timefile=$RUN_DIR/$tag.time
      # It sends every row, invalid ones included, and has no dead-letter topic.
      counted=$(( $(count "$prefix-data") + $(count "$prefix-voice") ))
      want=$(expect 'rows')
      ;;
    group1 | group2 | group3 | group1x4 | group1s256)
      shards=64
      case $contender in
        group1x4) shape=(1 4) ;;
        group1s256) shape=(1 2) shards=256 ;;
        *) shape=("${contender#group}" 2) ;;
      esac
      name="group: ${shape[0]} instance(s) x ${shape[1]} files, $shards shards"
      log "$name"
      run_group "$tag" "${shape[@]}" "$shards"
      timefile=$TIMEFILES
      prefix=bench-$run_id-$tag
      counted=$(( $(count "$prefix-data") + $(count "$prefix-voice") + $(count "$prefix-dlq") ))
      want=$(expect 'valid_data + valid_voice + invalid')
      ;;
    *) echo "unknown contender: $contender" >&2; exit 2 ;;
  esac
  log "$name: ${WALL}s, exit $RC, $counted of $want records"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$WALL" "$timefile" "$counted" "$want" "$RC" \
    "$BROKER_CPU" "${shape[0]}" "${shape[1]}" "$(stored "$prefix-data" "$prefix-voice" "$prefix-dlq")" >>"$RUN_DIR/runs.tsv"
done

# Flat memory: the same service on a small and a large single file.
rss_check=()
for rows in 10000 "$RSS_ROWS"; do
  dir=$WORK-rss-$rows
  "$BIN" generate --out "$SFTP_UPLOAD_DIR/$dir" --files 1 --rows "$rows" --kinds data --seed "$SEED" >/dev/null
  chown -R "$SFTP_USER:" "$SFTP_UPLOAD_DIR/$dir"
  run_ours "rss-$rows" "$dir"
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$RUN_DIR/rss-$rows.time")
  log "peak RSS on one data file of $rows rows: $((rss / 1024)) MiB (exit $RC)"
  rss_check+=("{\"rows\": $rows, \"peak_rss_mib\": $(python3 -c "print(round($rss / 1024, 1))"), \"exit_status\": $RC}")
done
remove_workload

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit+dirty"
cat >"$RUN_DIR/meta.json" <<EOF
{"date": "$(date -u +%Y-%m-%dT%H:%MZ)", "cpus": $(nproc), "cpu_model": "$cpu_model", "commit": "$commit",
 "loadavg_start": $load_start, "loadavg_end": $(cut -d' ' -f1 /proc/loadavg), "files_per_kind": $FILES, "rows_per_file": $ROWS, "bad_rate": $BAD_RATE, "partitions": $PARTITIONS,
 "rss_check": [$(IFS=,; echo "${rss_check[*]}")]}
EOF
python3 bench/report.py "$RUN_DIR" bench/results

if [[ ${MICRO:-1} == 1 ]]; then
  # One core, no broker: parse + validate + encode in MB/s of CSV (the thread's
  # CPU time, so other load on the machine does not count), and the two
  # durable ledger commits around every Kafka transaction (on this disk, not
  # in a tmpfs: the fsyncs are the cost).
  log "micro-benchmarks"
  {
    cargo bench --quiet --bench parse_encode 2>/dev/null
    cargo run --quiet --release -p cdr-state --example ledger_bench -- "$RUN_DIR/ledger-bench" 1000
  } | tee "$RUN_DIR/micro.txt"
  cp "$RUN_DIR/micro.txt" bench/results/latest-micro.txt
  # A poll over a directory that keeps its files: POLL_FILES already
  # committed files, one `once` pass each, locally and over SFTP.
  log "poll cost over ${POLL_FILES:=0,10000,100000} ingested files"
  CDR_BIN=$REPO_DIR/target/release/cdr-to-redpanda \
    cargo run --quiet --release --example poll_bench -- "$POLL_FILES" | tee bench/results/latest-poll.csv
fi
echo "logs: $RUN_DIR"
