"""Software updates and host-managed parameters, the terminal side (docs/updates.md).

    layout   the install root: releases/<version>, the `current` / `previous` links, state.json
    client   TUF-verified check, resumable download, side-by-side install
    trial    switch, trial boot, confirm, roll back; `bootcheck` runs before every start
    agent    inside a running terminal: trial checks, periodic checks, restart when idle
    params   parameter sets from the host: verified, validated as a whole, applied when idle
    cli      `kapos update`

This package does file and network I/O, so it sits with the composition layer (L6): it may
use `app` and `services`; nothing below it imports it. The journal and the keys live in the
terminal's data directory, which no code here ever opens for writing.
"""
