#!/usr/bin/env bash
# Installs the Debian packages the tests need, each only when its command is missing.
#   scripts/ensure-system-packages.sh COMMAND[:PACKAGE] ...     e.g.  nginx   or   chromium:chromium
# As root: `apt-get update` once, then `apt-get install -y --no-install-recommends` of the missing
# packages. Otherwise (no root, or no apt-get) it prints what to install and exits 0, so the other
# tests still run; a test that needs a missing command fails and names this script.
set -u
missing=()
for spec in "$@"; do
  command_name=${spec%%:*}
  package=${spec#*:}
  # nginx and friends live in /usr/sbin, which a non-root PATH may lack.
  if ! command -v "$command_name" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command_name" ]; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: missing system packages: ${missing[*]} (the tests that need them will fail)." >&2
  echo "Install them, e.g.: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || exit 1
apt-get install -y -qq --no-install-recommends "${missing[@]}" || exit 1
