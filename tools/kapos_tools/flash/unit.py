"""The systemd unit that runs kapos on the Pi, generated from a template."""

from string import Template

INSTALL_DIR = "/opt/kapos"
UNIT_PATH = "/etc/systemd/system/kapos.service"
CONFIG_PATH = "/etc/kapos/kapos.toml"
SERVICE_USER = "kapos"

UNIT_TEMPLATE = Template("""\
[Unit]
Description=kapos card terminal (board $board)
After=network-online.target time-sync.target
Wants=network-online.target

[Service]
# notify: the terminal sends READY=1 at its idle screen, then WATCHDOG=1 from its event loop
# (firmware/kapos/io/sd_notify.py). A loop silent for WatchdogSec is killed and restarted; a
# start that never reaches the idle screen is killed after TimeoutStartSec. Either way a trial
# boot that did not confirm is rolled back by the boot check below at the next start.
Type=notify
NotifyAccess=main
WatchdogSec=$watchdog_sec
TimeoutStartSec=$start_timeout_sec
User=$user
Group=$user
# software updates (docs/updates.md): before every start the boot check, run from the flashed
# install, confirms, drops or rolls back a trial boot; then the release `current` points at runs
# (none yet: the flashed code). Exit 75 = restart into a new release or parameter set.
ExecStartPre=/usr/bin/env -u PYTHONPATH $install_dir/.venv/bin/python -m kapos.update.trial --root $install_dir/updates
ExecStart=$install_dir/.venv/bin/kapos run --board $board --headless --config $config
Environment=KAPOS_UPDATE_ROOT=$install_dir/updates
Environment=PYTHONPATH=$install_dir/updates/current/firmware
Environment=KAPOS_BOARDS=$install_dir/boards
Environment=PYTHONUNBUFFERED=1
# on-failure includes a watchdog kill and a start timeout
Restart=on-failure
RestartSec=3
# exit 2: a bad config, a port in use, a read-only or full data directory; restarting cannot help
RestartPreventExitStatus=2
# /var/lib/kapos (journal, state) and /etc/kapos (config), created by systemd
StateDirectory=kapos
ConfigurationDirectory=kapos
# lgpio writes notification files into the working directory: it must be writable
WorkingDirectory=/var/lib/kapos
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
# No PrivateDevices=: it would hide /dev/spidev*, /dev/i2c-*, /dev/gpiochip*, /dev/input/*

[Install]
WantedBy=multi-user.target
""")


WATCHDOG_SEC = 30  # the loop pings every 15 s; nothing on it may block that long
START_TIMEOUT_SEC = 120  # boot check, start-up and the idle screen (a trial's deadline is 120 s too)


def render_unit(board, install_dir=INSTALL_DIR, config=CONFIG_PATH, user=SERVICE_USER):
    """The unit text; install_dir/config/user other than the defaults only for `systemd-analyze verify`."""
    return UNIT_TEMPLATE.substitute(board=board, user=user, install_dir=install_dir, config=config,
                                    watchdog_sec=WATCHDOG_SEC, start_timeout_sec=START_TIMEOUT_SEC)
