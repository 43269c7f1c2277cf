#!/usr/bin/env bash
# Longer crash soak than the test suite's 20 rounds: kill -9 the committing child ROUNDS times
# (default 500) and check every acknowledged commit after each recovery.
#   ROUNDS=2000 bash scripts/soak-crash.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npx tsc -p . >/dev/null
WALSTREAM_CRASH_ROUNDS="${ROUNDS:-500}" node --test --test-name-pattern='kill -9' dist/test/primary-crash.test.js
