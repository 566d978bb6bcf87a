#!/usr/bin/env bash
# make run: the local stack on the embedded file store. The server listens
# on :8080 with ./data; a scraper in demo mode scrapes the bundled sample
# usage page (served on loopback) and posts to it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
umask 077
[ -s data/.api-key ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/.api-key
[ -s data/.read-token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/.read-token
ADDR="${USAGE_ADDR:-:8080}"
PORT="${ADDR##*:}"

bin/usage-server --addr "$ADDR" --data-dir ./data --web-dir ./web \
  --api-key-file data/.api-key --read-token-file data/.read-token &
SERVER=$!
trap 'kill $SERVER $SCRAPER 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
SCRAPER=

for _ in $(seq 1 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/health" 2>/dev/null && break
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/health" 2>/dev/null)" = 503 ] && break
  sleep 0.2
done

bin/usage-scraper run --demo --interval "${DEMO_INTERVAL:-30s}" \
  --server "http://127.0.0.1:$PORT" --api-key-file data/.api-key \
  --outbox-dir data/.scraper-outbox --profile-dir data/.scraper-profile &
SCRAPER=$!

echo
echo "  Widget:  http://127.0.0.1:$PORT/#token=$(cat data/.read-token)"
echo "  Health:  http://127.0.0.1:$PORT/api/health"
echo "  Stop:    Ctrl-C"
echo
wait
