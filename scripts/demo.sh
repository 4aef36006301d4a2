#!/usr/bin/env bash
# The main job on a local stack: installs what is missing, starts Kafka and
# sshd on loopback, generates sample CDR files (with some invalid rows) into
# the SFTP upload directory, ingests them exactly once, and prints what
# landed, counted by an independent client (kcat, read_committed).
#
#   scripts/demo.sh            # 4 data + 4 voice files of 25,000 rows
#   FILES=10 ROWS=100000 scripts/demo.sh
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
FILES=${FILES:-4}
ROWS=${ROWS:-25000}
BAD_RATE=${BAD_RATE:-0.01}

scripts/bootstrap.sh
scripts/stack.sh up
eval "$(scripts/stack.sh env)"

echo "== building (release)"
cargo build --release --quiet
BIN=$REPO_DIR/target/release/cdr-to-redpanda

demo_dir=$SFTP_UPLOAD_DIR/demo
rm -rf "$demo_dir" && mkdir -p "$demo_dir"
echo "== generating $FILES data + $FILES voice files of $ROWS rows into $demo_dir"
"$BIN" generate --out "$demo_dir" --files "$FILES" --rows "$ROWS" --seed 42 --bad-rate "$BAD_RATE" > "$STACK_DIR/demo-generated.json"
chown -R "$SFTP_USER:" "$demo_dir"
ls -l "$demo_dir"

# A fresh run each time: the demo's own topics and ledger.
run_id=$(date +%s)
export CDR_DATA_TOPIC=demo-cdr-data-$run_id CDR_VOICE_TOPIC=demo-cdr-voice-$run_id \
  CDR_DLQ_TOPIC=demo-cdr-dlq-$run_id CDR_CHECKPOINT_TOPIC=demo-cdr-checkpoints-$run_id \
  CDR_TRANSACTIONAL_ID_PREFIX=demo-$run_id CDR_LEDGER_DIR=$STACK_DIR/demo-ledger-$run_id \
  CDR_TOPIC_REPLICATION=1 CDR_TOPIC_PARTITIONS=12 CDR_SETTLE_SECONDS=1 CDR_MIN_AGE_SECONDS=0 \
  SFTP_REMOTE_PATH=$SFTP_REMOTE_PATH/demo

echo "== ingesting over SFTP (exactly-once transactions)"
"$BIN" once

echo "== what landed (kcat, isolation.level=read_committed)"
count() {
  kcat -C -b "$KAFKA_BROKERS" -t "$1" -e -q -X isolation.level=read_committed -f '%k\n' | grep -c . || true
}
python3 - "$STACK_DIR/demo-generated.json" <<'PY' > "$STACK_DIR/demo-expected.txt"
import json, sys
s = json.load(open(sys.argv[1]))
rows = {"data": 0, "voice": 0}
bad = 0
for f in s["files"]:
    rows[f["kind"]] += f["rows"] - f["invalid_rows"]
    bad += f["invalid_rows"]
print(rows["data"], rows["voice"], bad)
PY
read -r want_data want_voice want_dlq < "$STACK_DIR/demo-expected.txt"
printf '%-34s %10s %10s\n' topic records expected
printf '%-34s %10s %10s\n' "$CDR_DATA_TOPIC" "$(count "$CDR_DATA_TOPIC")" "$want_data"
printf '%-34s %10s %10s\n' "$CDR_VOICE_TOPIC" "$(count "$CDR_VOICE_TOPIC")" "$want_voice"
printf '%-34s %10s %10s\n' "$CDR_DLQ_TOPIC" "$(count "$CDR_DLQ_TOPIC")" "$want_dlq"
echo
echo "== one record of each kind"
kcat -C -b "$KAFKA_BROKERS" -t "$CDR_DATA_TOPIC" -c 1 -e -q -X isolation.level=read_committed -f 'key %k\n%s\n'
kcat -C -b "$KAFKA_BROKERS" -t "$CDR_VOICE_TOPIC" -c 1 -e -q -X isolation.level=read_committed -f 'key %k\n%s\n'
kcat -C -b "$KAFKA_BROKERS" -t "$CDR_DLQ_TOPIC" -c 1 -e -q -X isolation.level=read_committed -f 'key %k\n%s\n'
echo
echo "== ledger"
"$BIN" status
echo
echo "== audit: ledger vs checkpoints vs topics (read_committed)"
"$BIN" audit
echo
echo "The stack keeps running: eval \"\$(scripts/stack.sh env)\" to use it, scripts/stack.sh down to stop it."
