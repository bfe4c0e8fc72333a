#!/bin/sh
# Install the Debian packages that real components in tests need (faketime, ...), once.
# Usage: tools/ensure_debs.sh STAMP PACKAGE:COMMAND ...
# Root with apt-get: installs what is missing. Otherwise: names what is missing; the tests
# that need it are skipped with that reason.
stamp=$1; shift
missing=""
for pair in "$@"; do
    command -v "${pair#*:}" >/dev/null 2>&1 || missing="$missing ${pair%%:*}"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian packages:$missing"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >/dev/null \
            || { echo "apt-get could not install:$missing (the tests needing them will be skipped)"; exit 0; }
    else
        echo "not installed:$missing (install them to run every test; those tests are skipped)"
        exit 0
    fi
fi
touch "$stamp"
