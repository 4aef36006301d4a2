#!/usr/bin/env bash
# Fuzzes the CSV reader+validator and the gzip path (fuzz/, cargo-fuzz).
#
#   scripts/fuzz.sh short        # CI: 30 s per target
#   scripts/fuzz.sh long [SECS]  # every core, an hour per target by default
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR/fuzz"
mode=${1:-short}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly-only flags; this enables them on the stable toolchain.
export RUSTC_BOOTSTRAP=1

case $mode in
  short) secs=30; jobs=1 ;;
  long) secs=${2:-3600}; jobs=$(nproc) ;;
  *) echo "usage: scripts/fuzz.sh short|long [SECS]" >&2; exit 2 ;;
esac
for target in csv_rows gzip_file; do
  echo "fuzz: $target for ${secs}s"
  cargo fuzz run "$target" -j "$jobs" -- -max_total_time="$secs" -max_len=65536 2>&1 | tail -n 3
  # tail hides the exit status; a crash leaves an artifact.
  if compgen -G "artifacts/$target/crash-*" >/dev/null; then
    echo "fuzz: $target found a crash: $(ls artifacts/$target/crash-*)" >&2
    exit 1
  fi
done
