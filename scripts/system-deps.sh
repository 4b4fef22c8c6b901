#!/usr/bin/env bash
# Install the Debian packages wattwatch's tests and services need, only those missing.
# Idempotent; a no-op when everything is there. Runs as root (CI, the dev machines) or via sudo.
set -euo pipefail

PACKAGES=(chromium)   # chromium: the HTML report's browser tests (tests/report); add others as issues need them

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
