#!/usr/bin/env bash
# Lint: swift-format, plus the loop rules that no formatter knows (design.md §3).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

swift format lint --strict --recursive Sources Tests 2>&1 | tee /tmp/switchyard-lint.txt || true
if [ -s /tmp/switchyard-lint.txt ]; then status=1; fi

# Daemon code runs on one libevent loop: no Swift concurrency, Dispatch, threads or locks.
if grep -rnE '\b(async|await)\b|\b(Task\s*[\.{(]|actor |@MainActor|DispatchQueue|import Dispatch|NSLock|pthread_mutex|Thread\()' \
    Sources --include='*.swift'; then
  echo "lint: Swift concurrency, Dispatch, threads or locks in daemon code (design.md §3)"
  status=1
fi
# C stays in SwitchyardIO.
if grep -rnE 'import (CLibEvent|COpenSSL)' Sources --include='*.swift' | grep -v '^Sources/SwitchyardIO/'; then
  echo "lint: only SwitchyardIO may import the C modules"
  status=1
fi
# Nothing on stdout in daemon code (logs go to stderr).
if grep -rnE '\bprint\(' Sources --include='*.swift'; then
  echo "lint: print() writes to stdout; use the Logger"
  status=1
fi
exit $status
