#!/usr/bin/env bash
# make run: the local stack on the embedded file store. The server listens
# on :8080 with ./data; a scraper in demo mode scrapes the bundled sample
# usage page (served on loopback) and posts to it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data .local
umask 077
[ -s data/.api-key ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/.api-key
[ -s data/.read-token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/.read-token
ADDR="${USAGE_ADDR:-:8080}"
PORT="${ADDR##*:}"
SERVER=
SCRAPER=

cleanup() {
  [ -n "$SCRAPER" ] && kill -TERM "$SCRAPER" 2>/dev/null || true
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin/usage-server --addr "$ADDR" --data-dir ./data --web-dir ./web \
  --api-key-file data/.api-key --read-token-file data/.read-token &
SERVER=$!

# Wait until the server answers (any status: with no data yet health is 503).
for _ in $(seq 1 100); do
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "run-local: usage-server exited; is port $PORT in use?" >&2
    exit 1
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/health" 2>/dev/null || true)
  [ "$code" = 200 ] || [ "$code" = 503 ] && break
  sleep 0.1
done

bin/usage-scraper run --demo --interval "${DEMO_INTERVAL:-30s}" \
  --server "http://127.0.0.1:$PORT" --api-key-file data/.api-key \
  --outbox-dir .local/scraper-outbox --profile-dir .local/scraper-profile &
SCRAPER=$!

echo
echo "  Widget:  http://127.0.0.1:$PORT/#token=$(cat data/.read-token)"
echo "  Health:  http://127.0.0.1:$PORT/api/health"
echo "  Stop:    Ctrl-C"
echo
wait -n "$SERVER" "$SCRAPER"
