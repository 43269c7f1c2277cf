#!/usr/bin/env bash
# Longer failover soak than the test suite's 5 rounds: ROUNDS rounds (default 50) of SIGKILL the
# primary under load, promote the synchronous standby, re-point the other (test/failover.test.ts).
#   ROUNDS=200 bash scripts/soak-failover.sh      (SEED=n replays a run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npx tsc -p . >/dev/null
WALSTREAM_FAILOVER_ROUNDS="${ROUNDS:-50}" ${SEED:+WALSTREAM_FAILOVER_SEED="$SEED"} node --test dist/test/failover.test.js
