#!/usr/bin/env bash
# Makes sure a Chromium for the browser tests exists. On Debian as root it
# installs Debian's chromium package; elsewhere it fails with what to do.
set -euo pipefail
for c in "${CHROME_PATH:-}" /usr/bin/chromium /usr/lib/chromium/chromium /usr/bin/chromium-browser /usr/bin/google-chrome; do
  if [ -n "$c" ] && [ -x "$c" ]; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-chromium: installing Debian's chromium package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  command -v chromium >/dev/null && exit 0
fi
echo "ensure-chromium: Chromium is missing. Install it (Debian: sudo apt-get install chromium; macOS: install Google Chrome) or set CHROME_PATH." >&2
exit 1
