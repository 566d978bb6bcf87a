#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, postgres) exist for the
# tests, which start a throwaway cluster of their own. On Debian as root it
# installs Debian's postgresql package (the cluster it creates is not used);
# elsewhere it fails with what to do.
set -euo pipefail
have() {
  local d
  for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then return 0; fi
  done
  return 1
}
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-postgres: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  have && exit 0
fi
echo "ensure-postgres: PostgreSQL is missing. Install it (Debian: sudo apt-get install postgresql; macOS: brew install postgresql) or set PG_BINDIR to the directory with initdb and postgres." >&2
exit 1
