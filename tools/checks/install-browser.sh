#!/usr/bin/env bash
# Installs headless Chromium from Debian packages for the browser tests (tests/browser),
# unless it is already there. Playwright for Python drives it (executable /usr/bin/chromium);
# no browser is ever downloaded by Playwright.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
fail() {
  echo "error: the browser tests need Debian's chromium at /usr/bin/chromium: $*" >&2
  echo "  install it yourself:  sudo apt-get install -y chromium" >&2
  exit 1
}
command -v apt-get >/dev/null || fail "apt-get is not available on this machine"
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null && sudo -n true 2>/dev/null || fail "not root and no passwordless sudo"
  as_root=(sudo -n)
fi
echo "browser: installing Debian chromium (apt-get)"
# Wait for another apt/dpkg run rather than failing on its lock.
apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get "${apt_opts[@]}" install --no-install-recommends chromium fonts-liberation \
  || { "${as_root[@]}" apt-get -q -o DPkg::Lock::Timeout=600 update \
    && "${as_root[@]}" apt-get "${apt_opts[@]}" install --no-install-recommends chromium fonts-liberation; } \
  || fail "apt-get install chromium failed"
[ -x /usr/bin/chromium ] || fail "apt-get finished but /usr/bin/chromium is missing"
/usr/bin/chromium --version
