#!/usr/bin/env bash
# make run: the local stack on the embedded file store. The server listens
# on :8080 (USAGE_ADDR) with ./data; a scraper in demo mode scrapes the
# bundled sample usage page (served on loopback) and posts to it. Ctrl-C
# stops both. Logs are text lines on the terminal, copies in .local/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data .local
umask 077
# Hex: a token is pasted into a URL fragment, where base64's + and / do not
# survive every decoder.
[ -s data/.api-key ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/.api-key
[ -s data/.read-token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/.read-token
ADDR="${USAGE_ADDR:-:8080}"
SERVER_LOG=.local/server.log
SCRAPER_LOG=.local/scraper.log
: > "$SERVER_LOG"
: > "$SCRAPER_LOG"
SERVER=
SCRAPER=
WATCH=

cleanup() {
  for pid in $WATCH $SCRAPER $SERVER; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin/usage-server --addr "$ADDR" --data-dir ./data --web-dir ./web --log-format text \
  --api-key-file data/.api-key --read-token-file data/.read-token \
  > >(tee -a "$SERVER_LOG") 2>&1 &
SERVER=$!

# Wait for OUR server: the address it prints once it listens. An answer on
# the port proves nothing, since another program may hold it.
LISTEN=
for _ in $(seq 1 200); do
  LISTEN=$(sed -n 's/^listening on //p' "$SERVER_LOG" | head -n 1)
  [ -n "$LISTEN" ] && break
  if ! kill -0 "$SERVER" 2>/dev/null; then
    sleep 0.2 # let tee copy the last lines
    if grep -q 'address already in use' "$SERVER_LOG"; then
      echo >&2
      echo "run-local: the address $ADDR is already in use by another program." >&2
      echo "run-local: stop it, or pick a free port: USAGE_ADDR=127.0.0.1:8081 make run" >&2
    else
      echo "run-local: usage-server exited at start; its log is above and in $SERVER_LOG" >&2
    fi
    exit 1
  fi
  sleep 0.1
done
if [ -z "$LISTEN" ]; then
  echo "run-local: usage-server did not start listening within 20 s; see $SERVER_LOG" >&2
  exit 1
fi
PORT="${LISTEN##*:}"
URL="http://127.0.0.1:$PORT/#token=$(cat data/.read-token)"

bin/usage-scraper run --demo --interval "${DEMO_INTERVAL:-30s}" --log-format text \
  --server "http://127.0.0.1:$PORT" --api-key-file data/.api-key \
  --outbox-dir .local/scraper-outbox --profile-dir .local/scraper-profile \
  > >(tee -a "$SCRAPER_LOG") 2>&1 &
SCRAPER=$!

echo
echo "  Widget:  $URL"
echo "  Health:  http://127.0.0.1:$PORT/api/health"
echo "  Logs:    $SERVER_LOG, $SCRAPER_LOG"
echo "  Stop:    Ctrl-C"
echo

# The scraper's start-up lines push the URL off screen: say it again once
# the first snapshot is stored (bounded: 10 minutes).
(
  for _ in $(seq 1 1200); do
    if grep -v 'not synced' "$SCRAPER_LOG" | grep -q 'synced'; then
      echo
      echo "  Widget ready: $URL"
      echo
      exit 0
    fi
    sleep 0.5
  done
) &
WATCH=$!

wait -n "$SERVER" "$SCRAPER"
