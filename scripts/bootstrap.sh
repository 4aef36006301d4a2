#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian 12 machine, and nothing
# when it is all there already (then it takes well under a second).
#
#   scripts/bootstrap.sh            install whatever is missing
#   scripts/bootstrap.sh --check    only report what is missing (exit 1 if any)
#
# Checks use `command -v` / `dpkg-query` first; `apt-get update` runs at most
# once, and only when something has to be installed.
set -euo pipefail

# Debian packages that must be installed as such (headers, meta-packages).
DEB_PACKAGES=(
  build-essential pkg-config libssl-dev zlib1g-dev cmake  # rdkafka-sys / ssh2 native builds
  python3-venv                                             # benchmark tooling
)
# Commands and the package that provides each one.
declare -A COMMAND_PACKAGES=(
  [/usr/sbin/sshd]=openssh-server   # the stack's own sftp server
  [ssh-keygen]=openssh-client
  [ssh-keyscan]=openssh-client
  [sftp]=openssh-client
  [kcat]=kcat                       # readiness checks, manual produce/consume
  [/usr/bin/time]=time              # scripts/bench.sh: peak RSS and CPU time (-v)
  [curl]=curl
  [mvn]=maven                       # fetches the Kafka broker jars
  [ss]=iproute2                     # free-port checks
  [pgrep]=procps
  [flock]=util-linux
  [setsid]=util-linux
  [prometheus]=prometheus           # tests/prometheus.rs: the dashboard's queries, the alerts
  [promtool]=prometheus
  [podman]=podman                   # scripts/image.sh: builds and runs the runtime image
  [runc]=runc                       # podman's runtime here (crun refuses this sandbox's cgroups)
  [useradd]=passwd
  [chpasswd]=passwd
)
JAVA_MIN_MAJOR=17                   # Kafka 4.x brokers need Java 17+

log() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

java_major() {
  # `java -version` prints e.g. 'openjdk version "17.0.15" 2025-04-15' on stderr.
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1 || true)
  echo "${v:-0}"
}

# Prints the packages that are missing, one per line.
missing_packages() {
  local cmd pkg status
  for cmd in "${!COMMAND_PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || echo "${COMMAND_PACKAGES[$cmd]}"
  done
  if ! command -v java >/dev/null 2>&1 || (( $(java_major) < JAVA_MIN_MAJOR )); then
    echo default-jre-headless
  fi
  for pkg in "${DEB_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || echo "$pkg"
  done
}

apt_install() {
  local policy=/usr/sbin/policy-rc.d created_policy=0
  # Installing openssh-server must not start the system sshd: Debian skips
  # service starts while policy-rc.d exits 101 (container images ship one).
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    created_policy=1
  fi
  log "installing: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null || {
      (( created_policy )) && as_root rm -f "$policy"
      return 1
    }
  (( created_policy )) && as_root rm -f "$policy"
  return 0
}

check_cargo() {
  # rustup is part of the machine image; we only check that it gave us cargo
  # (a toolchain cannot be downloaded here).
  if command -v cargo >/dev/null 2>&1 || [[ -x $HOME/.cargo/bin/cargo ]]; then
    return 0
  fi
  log "cargo not found (expected from rustup in ~/.cargo/bin); install a Rust toolchain"
  return 1
}

main() {
  local check_only=0
  [[ ${1:-} == --check ]] && check_only=1

  local -a missing
  mapfile -t missing < <(missing_packages | sort -u)
  if (( ${#missing[@]} )); then
    if (( check_only )); then
      log "missing: ${missing[*]}"
      exit 1
    fi
    apt_install "${missing[@]}"
    mapfile -t missing < <(missing_packages | sort -u)
    if (( ${#missing[@]} )); then
      log "still missing after install: ${missing[*]}"
      exit 1
    fi
  fi
  check_cargo
}

main "$@"
