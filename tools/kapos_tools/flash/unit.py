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
Type=simple
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


def render_unit(board):
    return UNIT_TEMPLATE.substitute(board=board, user=SERVICE_USER, install_dir=INSTALL_DIR, config=CONFIG_PATH)
