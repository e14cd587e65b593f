#!/usr/bin/env bash
# The browser tests (tests/e2e) drive Debian's chromium through Playwright; Playwright's own
# browser download is never used. Installs the chromium package only when it is missing.
set -u
browser=${E2E_CHROMIUM:-/usr/bin/chromium}
[ -x "$browser" ] && exit 0
echo "$browser not found; installing Debian's chromium for the browser tests..."
bash "$(dirname "$0")/apt_install.sh" chromium fonts-dejavu-core
[ -x "$browser" ] || { echo "error: $browser is still missing; the browser tests cannot run" >&2; exit 1; }
