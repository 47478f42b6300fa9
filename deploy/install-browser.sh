#!/usr/bin/env bash
# Installs Debian's Chromium (for the dashboard's browser tests) and a CJK font (so Chinese labels
# render instead of boxes) when they are missing. Idempotent: exits 0 at once when both are there.
set -euo pipefail
have_browser() { [ -x /usr/bin/chromium ]; }
have_cjk_font() { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family 2>/dev/null)" ]; }
if have_browser && have_cjk_font; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "Chromium or a CJK font is missing; install them (apt-get install chromium fonts-noto-cjk) or run as root" >&2
  exit 1
fi
packages=()
have_browser || packages+=(chromium)
have_cjk_font || packages+=(fonts-noto-cjk)
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
have_browser
