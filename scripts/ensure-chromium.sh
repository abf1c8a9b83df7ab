#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is on PATH for the console's browser
# test (console/browser_test.go drives it with chromedp). Installs Debian's
# package when it is missing and we can; otherwise says so and exits 0: the
# browser test then skips with a message, and every other test still runs.
set -euo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done
skip() {
  echo "chromium is missing ($1): the console's browser test will be skipped; install chromium (apt-get install chromium) to run it" >&2
  exit 0
}
command -v apt-get >/dev/null 2>&1 || skip "no apt-get here"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    skip "not root and no passwordless sudo"
  fi
fi
echo "installing chromium from Debian's packages..." >&2
$SUDO apt-get update -qq >/dev/null || skip "apt-get update failed"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
  skip "apt-get install chromium failed"
command -v chromium >/dev/null 2>&1 || skip "the package installed no chromium binary"
