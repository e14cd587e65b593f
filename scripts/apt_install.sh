#!/usr/bin/env bash
# Install Debian packages as root, or through passwordless sudo; quiet, non-interactive.
# Usage: scripts/apt_install.sh PACKAGE...   (exit status: apt's, or 1 when neither is possible)
set -u
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
else echo "cannot install $* (not root, no passwordless sudo)" >&2; exit 1; fi
command -v apt-get >/dev/null || { echo "cannot install $* (no apt-get)" >&2; exit 1; }
$sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
