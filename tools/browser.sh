#!/usr/bin/env bash
# The system Chromium that the browser check of the site (tests/test_site.py) drives.
# Looks for it as tools/site_check.py does ($CHROMIUM, else chromium, chromium-browser,
# google-chrome on PATH); when there is none, installs the Debian package `chromium` with
# apt-get, as root or through sudo when sudo needs no password. Never `playwright install`.
#
# Output contract (tools/test.sh relies on it):
#   stdout empty, exit 0       a Chromium is there (found, or installed now)
#   one line on stdout, exit 0 none can be had here: the line says why and how to enable it
#   exit non-zero              the install failed, or none can be had under CI (CI never skips)
# Everything else goes to stderr.
set -euo pipefail

say() { echo "tools/browser.sh: $*" >&2; }

find_chromium() {
  if [ -n "${CHROMIUM:-}" ] && [ -f "$CHROMIUM" ]; then
    echo "$CHROMIUM"
    return
  fi
  local name
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$name" && return
  done
  return 1
}

# No browser and no way to install one: under CI that is an error, elsewhere a reason to skip.
cannot_have() {
  local why="the browser check of the site did not run: $1; to run it, install Chromium" \
    how="(Debian: sudo apt-get install chromium) or set CHROMIUM=/path/to/chrome"
  case "${CI:-}" in
    "" | 0 | false | False | FALSE) echo "$why $how" ;;
    *) say "ERROR (CI=$CI, where the browser check never skips): $why $how"; exit 1 ;;
  esac
  exit 0
}

if browser="$(find_chromium)"; then
  say "browser: $browser ($("$browser" --version 2>/dev/null | head -n 1 || true))"
  exit 0
fi

command -v apt-get >/dev/null || cannot_have "no Chromium found and no apt-get to install one"
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  cannot_have "no Chromium found, and installing one needs root (not root, no password-less sudo)"
fi

say "no Chromium found: installing the Debian package chromium with ${sudo:+sudo }apt-get (about a minute, once)"
$sudo apt-get update -qq
apt-cache show chromium >/dev/null 2>&1 || cannot_have "no Chromium found and apt has no package chromium"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
browser="$(find_chromium)" || { say "ERROR: apt-get installed chromium, yet no Chromium is on PATH"; exit 1; }
say "browser: $browser ($("$browser" --version 2>/dev/null | head -n 1 || true))"
