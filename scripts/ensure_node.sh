#!/usr/bin/env bash
# The widgets' front end (js/) is bundled by npm when the package is installed: make sure Node.js
# >= 20 and npm are there (Debian's nodejs/npm are installed only when missing).
set -u
if ! command -v npm >/dev/null; then
  echo "npm not found; installing Debian's nodejs and npm..."
  bash "$(dirname "$0")/apt_install.sh" nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "error: the widget bundle needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
