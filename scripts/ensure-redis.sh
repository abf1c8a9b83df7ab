#!/usr/bin/env bash
# Makes sure redis-server is on PATH: the tests start their own servers on
# free ports in temporary directories. Installs Debian's package when it is
# missing and we can; otherwise says how.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
      echo "redis-server is missing: install it (apt-get install redis-server) and rerun" >&2; exit 1
    fi
  fi
  echo "installing redis-server from Debian's packages..." >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # The package starts a system service on 6379; the tests do not use it.
  command -v redis-server >/dev/null 2>&1 && exit 0
fi
echo "redis-server is missing and could not be installed: install Redis 7 (redis-server on PATH) and rerun" >&2
exit 1
