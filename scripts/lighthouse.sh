#!/usr/bin/env bash
# Lighthouse (npm, installed into a cache directory on first use) against
# Debian's Chromium, on a locally started usage-server holding one
# snapshot: the widget page with its token, as a phone (Lighthouse's
# default mobile emulation and throttling) and as a desktop. Prints the
# four category scores and the total blocking time of each; the reports
# land in .artifacts/lighthouse/. Needs bin/usage-server and web/app.wasm
# (make build). Reports only: it fails when Lighthouse cannot run, not on
# a low score.
set -euo pipefail
cd "$(dirname "$0")/.."

LH_VERSION="${LIGHTHOUSE_VERSION:-12}"
CACHE="${LIGHTHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/usage-widget/lighthouse}"
export CHROME_PATH="${CHROME_PATH:-/usr/bin/chromium}"
OUT=.artifacts/lighthouse
mkdir -p "$OUT"

LH="$CACHE/node_modules/.bin/lighthouse"
if [ ! -x "$LH" ]; then
  command -v npm >/dev/null || { echo "lighthouse: npm is needed (apt-get install npm)" >&2; exit 1; }
  echo "lighthouse: installing lighthouse@$LH_VERSION into $CACHE" >&2
  mkdir -p "$CACHE"
  npm install --silent --no-audit --no-fund --prefix "$CACHE" "lighthouse@$LH_VERSION" >&2
fi
[ -x "$CHROME_PATH" ] || { echo "lighthouse: no Chromium at $CHROME_PATH (make deps)" >&2; exit 1; }
SERVER_BIN="${USAGE_SERVER_BIN:-bin/usage-server}"
[ -x "$SERVER_BIN" ] && [ -s web/app.wasm ] || { echo "lighthouse: run make build first" >&2; exit 1; }

TMP=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

KEY=lighthouse-write-key-0123456789
TOKEN=lighthouse-read-token-0123456789
"$SERVER_BIN" --addr 127.0.0.1:0 --data-dir "$TMP/data" --web-dir ./web --log-format text \
  --api-key "$KEY" --read-token "$TOKEN" > "$TMP/server.log" 2>&1 &
SERVER=$!
PORT=
for _ in $(seq 1 200); do
  LISTEN=$(sed -n 's/^listening on //p' "$TMP/server.log" | head -n 1)
  [ -n "$LISTEN" ] && { PORT="${LISTEN##*:}"; break; }
  kill -0 "$SERVER" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "lighthouse: usage-server did not start" >&2; cat "$TMP/server.log" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"

now=$(date -u +%s)
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
curl -fsS -X POST "$BASE/api/claude/console-usage" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d "{\"account\":\"default\",\"scrapedAt\":\"$(iso "$now")\",\"capture\":\"api\",\"meters\":[
    {\"id\":\"session\",\"label\":\"Current session\",\"percentUsed\":42,\"resetsAt\":\"$(iso $((now + 7800)))\"},
    {\"id\":\"weekly_all\",\"label\":\"All models\",\"percentUsed\":18,\"resetsAt\":\"$(iso $((now + 300000)))\"},
    {\"id\":\"weekly_opus\",\"label\":\"Opus only\",\"percentUsed\":3,\"resetsAt\":\"$(iso $((now + 300000)))\"}]}" >/dev/null

URL="$BASE/#token=$TOKEN"
echo "Lighthouse $("$LH" --version) against $("$CHROME_PATH" --version 2>/dev/null | head -n 1)"
for form in mobile desktop; do
  preset=()
  [ "$form" = desktop ] && preset=(--preset=desktop)
  "$LH" "$URL" "${preset[@]}" --quiet --output=json --output-path="$OUT/$form.json" \
    --chrome-flags="--headless=new --no-sandbox" \
    --only-categories=performance,accessibility,best-practices,seo >/dev/null
  node -e '
    const r = require(process.argv[1]);
    const s = (k) => Math.round(r.categories[k].score * 100);
    const tbt = Math.round(r.audits["total-blocking-time"].numericValue);
    const lcp = (r.audits["largest-contentful-paint"].numericValue / 1000).toFixed(1);
    console.log(`${process.argv[2].padEnd(8)} performance ${s("performance")}  accessibility ${s("accessibility")}  best-practices ${s("best-practices")}  seo ${s("seo")}  (TBT ${tbt} ms, LCP ${lcp} s)`);
  ' "$PWD/$OUT/$form.json" "$form"
done
