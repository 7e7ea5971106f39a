#!/usr/bin/env bash
# Installs Debian packages a make target needs, unless the command is already there:
#   apt-install.sh <command> <what needs it> <package>...
# Used for chromium (browser tests), promtool (metrics checks) and wrk (make bench). When it
# cannot install, it says what to install and fails: a missing tool never becomes a skip.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 <command> <purpose> <package>..." >&2; exit 2; }
cmd=$1 purpose=$2
shift 2
if command -v "$cmd" >/dev/null || [ -x "$cmd" ]; then
  exit 0
fi
fail() {
  echo "error: $purpose needs '$cmd': $*" >&2
  echo "  install it yourself:  sudo apt-get install -y $*" >&2
  exit 1
}
command -v apt-get >/dev/null || fail "$@"
as_root=()
if [ "$(id -u)" != 0 ]; then
  { command -v sudo >/dev/null && sudo -n true 2>/dev/null; } || fail "$@"
  as_root=(sudo -n)
fi
echo "$purpose: installing $* (apt-get)"
# Wait for another apt/dpkg run rather than failing on its lock.
apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get "${apt_opts[@]}" install --no-install-recommends "$@" >/dev/null \
  || { "${as_root[@]}" apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null \
    && "${as_root[@]}" apt-get "${apt_opts[@]}" install --no-install-recommends "$@" >/dev/null; } \
  || fail "$@"
{ command -v "$cmd" >/dev/null || [ -x "$cmd" ]; } || fail "$@"
