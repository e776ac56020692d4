#!/usr/bin/env bash
# Install the Debian packages a make target needs, when they are missing.
#
#   bash include/system_packages.sh TARGET PACKAGE:BINARY[:WHY] ...
#
# Each argument names a Debian package, the binary (a command name or an absolute path) that
# shows it is installed, and optionally what needs it. Missing packages are installed with
# apt-get, all in one go, when this runs as root on a machine with apt-get. When it cannot
# install them it fails at once with one line per missing package that says what to install,
# before anything slow starts. `make test` runs it first, e.g.
#
#   bash include/system_packages.sh "make test" chromium:/usr/bin/chromium:tests/e2e/test_ui_trigger.py
#
# The Celery stack adds postgresql:/usr/lib/postgresql:... and redis-server:redis-server:... (CELERY_PACKAGES).
set -euo pipefail

target="${1:?usage: system_packages.sh TARGET PACKAGE:BINARY[:WHY] ...}"
shift

present() {  # a binary given as a path must exist; a bare name must be on PATH
    if [[ "$1" == /* ]]; then [[ -e "$1" ]]; else command -v "$1" >/dev/null 2>&1; fi
}

missing=() whys=()
for spec in "$@"; do
    IFS=: read -r package binary why <<<"$spec"
    present "${binary:-$package}" && continue
    missing+=("$package")
    whys+=("${why:-}")
done
((${#missing[@]})) || exit 0

fail() {  # one line: what is missing, what needs it, and the command that installs it
    local i needs=""
    for i in "${!missing[@]}"; do
        needs+="${needs:+, }${missing[$i]}${whys[$i]:+ for ${whys[$i]}}"
    done
    echo "$target needs Debian's $needs: run apt-get install ${missing[*]} as root ($1)" >&2
    exit 1
}

if [[ "$(id -u)" != 0 ]]; then fail "cannot install here: not root"; fi
if ! command -v apt-get >/dev/null 2>&1; then fail "cannot install here: no apt-get"; fi

echo "$target: installing Debian's ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    fail "apt-get failed"
fi
for spec in "$@"; do
    IFS=: read -r package binary _ <<<"$spec"
    present "${binary:-$package}" || fail "installed, but ${binary:-$package} is still missing"
done
