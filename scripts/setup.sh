#!/usr/bin/env bash
# Idempotent set-up of a checkout, run before `npm test` / `npm start` (npm pre-scripts) and by CI:
#   1. Node >= 20;
#   2. dependencies: `npm ci` (or `npm install` without a lock) only when node_modules is missing or
#      package-lock.json changed since the last install here (a stamp inside node_modules);
#   3. the build: `npx tsc -p .` into dist/;
#   4. PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin (the test peer) and a `postgres` OS
#      account to run them as; installed with apt-get when missing and we are root (or have sudo -n).
#      The tests initdb their own clusters on their own ports: a cluster the package may start on
#      5432 is left alone and does not matter;
#   5. Chromium (/usr/bin/chromium, Debian's `chromium`) for the bench report tests, which open the
#      HTML reports in headless Chromium (test/bench-report-*): installed with apt-get when missing,
#      only when those tests are part of the checkout.
# A second run with nothing changed only rebuilds (incrementally) and checks. Exits non-zero with a
# message saying what is missing when a step cannot be done.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG_BIN_DIR=/usr/lib/postgresql/15/bin
say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Node
command -v node >/dev/null 2>&1 || die "node is not installed (Node.js >= 20 is required)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is required, found $(node --version)"

# 2. Dependencies
lock_hash() { if [ -f package-lock.json ]; then sha256sum <package-lock.json; else sha256sum <package.json; fi | cut -d' ' -f1; }
stamp=node_modules/.walstream-setup-stamp
want=$(lock_hash)
have=$( [ -f "$stamp" ] && cat "$stamp" || true)
if [ ! -d node_modules ]; then
  need_install=1
elif [ "$have" = "$want" ]; then
  need_install=0
elif [ -z "$have" ] && npm ls --depth=0 >/dev/null 2>&1; then
  # installed before this script existed and consistent with the lock: adopt it, do not reinstall
  # (npm ci would delete node_modules under anyone else using this checkout)
  need_install=0
  echo "$want" >"$stamp"
else
  need_install=1
fi
if [ "$need_install" = 1 ]; then
  if [ -f package-lock.json ]; then
    say "installing dependencies (npm ci)"
    if ! ci_out=$(npm ci --no-audit --no-fund --loglevel=error 2>&1); then
      printf '%s\n' "$ci_out" | grep -E 'error code|in sync|Missing:|ERR!|network|ENOTFOUND|EAI_AGAIN' | head -8 >&2 || true
      die "npm ci failed (is the npm registry reachable? is package-lock.json in step with package.json?)"
    fi
  else
    npm install --no-audit --no-fund --loglevel=error >/dev/null ||
      die "npm install failed (is the npm registry reachable?)"
  fi
  echo "$(lock_hash)" >"$stamp"
fi

# 3. Build. Type errors are printed but do not stop the run: tsc still emits, and the tests decide.
if ! tsc_out=$(npx --no-install tsc -p . 2>&1); then
  if [ ! -d dist ]; then
    printf '%s\n' "$tsc_out" >&2
    die "the TypeScript build produced no dist/"
  fi
  printf '%s\n' "$tsc_out" | grep -v '^npm warn' >&2 || true
  say "WARNING: tsc reported type errors (above); continuing with the emitted JavaScript"
fi

# 4. PostgreSQL 15 and the postgres account
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 126
  fi
}
if [ ! -x "$PG_BIN_DIR/initdb" ] || [ ! -x "$PG_BIN_DIR/postgres" ] || [ ! -x "$PG_BIN_DIR/pg_waldump" ]; then
  command -v apt-get >/dev/null 2>&1 ||
    die "PostgreSQL 15 is missing ($PG_BIN_DIR) and there is no apt-get here: install PostgreSQL 15 so that $PG_BIN_DIR/{initdb,postgres,pg_waldump,psql,pg_receivewal} exist"
  as_root true 2>/dev/null ||
    die "PostgreSQL 15 is missing ($PG_BIN_DIR) and this user can neither apt-get nor sudo: run as root 'apt-get install -y postgresql-15'"
  say "installing postgresql-15 with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null || die "apt-get update failed"
  # the package may create and start a 'main' cluster on 5432; that is harmless, its failure too
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null ||
    say "apt-get install returned an error (often only the packaged cluster failing to start); checking the binaries"
  [ -x "$PG_BIN_DIR/initdb" ] && [ -x "$PG_BIN_DIR/postgres" ] || die "postgresql-15 did not install $PG_BIN_DIR/initdb and postgres"
fi
# 5. Chromium for the bench report tests (HTML reports checked in headless Chromium).
CHROMIUM=/usr/bin/chromium
if compgen -G 'test/bench-report-*.test.ts' >/dev/null && [ ! -x "$CHROMIUM" ]; then
  command -v apt-get >/dev/null 2>&1 ||
    die "Chromium is missing ($CHROMIUM, for the bench report tests) and there is no apt-get here: install Chromium so that $CHROMIUM exists"
  as_root true 2>/dev/null ||
    die "Chromium is missing ($CHROMIUM, for the bench report tests) and this user can neither apt-get nor sudo: run as root 'apt-get install -y chromium'"
  say "installing chromium with apt-get (for the bench report tests)"
  as_root apt-get update -qq >/dev/null || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || die "apt-get install chromium failed"
  [ -x "$CHROMIUM" ] || die "the chromium package did not install $CHROMIUM"
fi

# As root the tests run PostgreSQL as `postgres` (it refuses to run as root); the package creates the
# account, but make sure of it when the binaries came from elsewhere.
if ! id postgres >/dev/null 2>&1; then
  if as_root useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres 2>/dev/null; then
    say "created the postgres OS account"
  elif [ "$(id -u)" = 0 ]; then
    die "there is no postgres OS account and useradd failed (as root the tests run PostgreSQL as postgres)"
  fi
fi
exit 0
