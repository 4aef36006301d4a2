#!/usr/bin/env bash
# Builds the runtime image, localhost/cdr-to-redpanda:latest, from the real
# Dockerfile, and prints its size.
#
#   scripts/image.sh            build (what scripts/test.sh calls)
#
# Where a Docker engine answers, the whole Dockerfile is built with
# `docker build` (its builder stage pulls rust:*-bookworm). Here, with no
# image registry and no Docker engine, podman (Debian's, with runc) builds
# the Dockerfile's runtime stage: each `COPY --from=builder SRC DST` takes SRC
# from this host instead (Debian bookworm, like the builder stage: the
# release binary cargo builds, stripped; zlib; an empty ledger directory),
# and its base, gcr.io/distroless/cc-debian12:nonroot, is assembled from the
# same Debian packages distroless is made of (libc6, libgcc-s1, libssl3,
# ca-certificates; a nonroot user 65532; /tmp), imported under that name.
# Every other line of the stage is used as written. tests/image.rs runs it.
#
# Environment: IMAGE (localhost/cdr-to-redpanda:latest), CONTAINERS_CONF
# (default: .cache/containers.conf, written here: runc, since crun refuses
# this sandbox's hybrid cgroups, and ulimits within the host's hard limits).
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
IMAGE=${IMAGE:-localhost/cdr-to-redpanda:latest}
BASE=gcr.io/distroless/cc-debian12:nonroot
CACHE=$REPO_DIR/.cache/image
BASE_PACKAGES=(libc6 libgcc-s1 libssl3 ca-certificates)

log() { printf 'image: %s\n' "$*" >&2; }

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  log "docker engine found: building the whole Dockerfile"
  docker build -t "$IMAGE" .
  docker image inspect "$IMAGE" --format 'image: {{.Size}} bytes' 
  exit 0
fi

scripts/bootstrap.sh
mkdir -p "$CACHE"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO_DIR/.cache/containers.conf}
if [[ ! -f $CONTAINERS_CONF ]]; then
  nofile=$(ulimit -Hn)
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
fi

# The base, rebuilt when Debian's package versions change.
versions=$(apt-cache policy "${BASE_PACKAGES[@]}" | awk '/Candidate/ {print $2}' | tr '\n' ' ')
if [[ $(cat "$CACHE/base.stamp" 2>/dev/null) != "$versions" ]] || ! podman image exists "$BASE"; then
  log "assembling $BASE from Debian packages: ${BASE_PACKAGES[*]}"
  rm -rf "$CACHE/debs" "$CACHE/rootfs"
  mkdir -p "$CACHE/debs" "$CACHE/rootfs"
  (cd "$CACHE/debs" && apt-get download "${BASE_PACKAGES[@]}" 2>/dev/null)
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$CACHE/rootfs"; done
  root=$CACHE/rootfs
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  # What update-ca-certificates makes from the package's certificates.
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
  # Libraries and certificates only: no shell, no tools, no docs, no
  # character-set modules (nothing here calls iconv).
  rm -rf "$root/usr/share" "$root/usr/bin" "$root/usr/sbin" "$root/sbin" "$root/usr/libexec" \
    "$root/usr/lib/x86_64-linux-gnu/gconv" "$root/etc/ca-certificates" "$root/etc/ld.so.conf.d"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  chown 65532:65532 "$root/home/nonroot"
  tar -C "$root" -c . | podman import --quiet - "$BASE" >/dev/null
  echo "$versions" >"$CACHE/base.stamp"
fi

log "building the release binary"
cargo build --release --locked --bin cdr-to-redpanda
ctx=$CACHE/context
rm -rf "$ctx"
mkdir -p "$ctx/ledger"
strip -o "$ctx/cdr-to-redpanda" "${CARGO_TARGET_DIR:-target}/release/cdr-to-redpanda"
cp -L /lib/x86_64-linux-gnu/libz.so.1 "$ctx/libz.so.1"

# The runtime stage, its builder copies taken from the context.
awk '
  /^FROM / { runtime = ($0 ~ /AS runtime/) }
  runtime {
    if ($1 == "COPY" && $2 ~ /^--from=builder/) {
      src = $(NF - 1); n = split(src, parts, "/"); name = parts[n]
      line = "COPY"
      for (i = 2; i < NF - 1; i++) if ($i !~ /^--from=/) line = line " " $i
      print line " " name " " $NF
      next
    }
    print
  }' Dockerfile >"$ctx/Containerfile"
grep -q '^FROM ' "$ctx/Containerfile" || { log "no runtime stage (FROM ... AS runtime) in the Dockerfile"; exit 1; }
podman build --quiet --format docker --pull=never -t "$IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
log "$IMAGE: $size bytes ($(( size / 1000000 )) MB)"
