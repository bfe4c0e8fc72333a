#!/bin/sh
# Which Python `make` builds .venv/ from (the Makefile's PYTHON; PYTHON=... overrides).
#
# The distribution's /usr/bin/python3 when it is 3.11 or newer and can make a venv with
# pip: Debian, Ubuntu and Raspberry Pi OS build it with PGO and LTO and link libpython
# into the executable, and the reference host runs ~9 % fewer instructions and ~12-20 %
# less CPU per authorization on it than on a default pyenv build (a shared libpython,
# no PGO) of the same 3.11 (docs/host.md, "Which Python"). Otherwise python3 on PATH.
system=${KAPOS_SYSTEM_PYTHON:-/usr/bin/python3}  # (the variable: for its test)
if [ -x "$system" ] && "$system" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "$system"
else
    echo python3
fi
