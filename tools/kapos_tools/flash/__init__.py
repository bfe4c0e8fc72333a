"""`kapos flash`: install kapos on a Raspberry Pi over SSH and run it as a systemd service.

    kapos flash --board rpi4 --target pi@kapos.local[:PORT] [--ssh-port PORT] [--dry-run] [--repo PATH]

The plan (plan.py) is a list of steps of ssh / rsync commands built by pure functions;
the runner (runner.py) executes them and stops at the first failure. See docs/deploy.md.
"""

import os
import sys

from kapos_tools.flash.plan import build_plan

EXIT_OK, EXIT_FAILED = 0, 1


def default_repo():
    """The checkout this kapos runs from (firmware/kapos -> repo root), else the cwd."""
    import kapos

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(kapos.__file__))))
    return here if os.path.isfile(os.path.join(here, "pyproject.toml")) else os.getcwd()


def register(subparsers):
    p = subparsers.add_parser("flash", help="install kapos on a Raspberry Pi over SSH (systemd service)",
                              description="Copy kapos to a Raspberry Pi, install it in /opt/kapos and "
                                          "run it as the 'kapos' systemd service.")
    p.add_argument("--board", required=True, help="board name in boards/ (rpi4, rpi5, rpi-zero2w) or a board file")
    p.add_argument("--target", default=None, metavar="USER@HOST[:PORT]",
                   help="SSH login on the Pi, e.g. pi@kapos.local or pi@kapos.local:2222")
    # (--port is the Pico's serial port: pico_cli)
    p.add_argument("--ssh-port", type=int, default=None, metavar="PORT", help="SSH port on the Pi (default 22)")
    p.add_argument("--dry-run", action="store_true", help="print every command, one per line, and run nothing")
    p.add_argument("--repo", default=None, metavar="PATH", help="kapos checkout to copy (default: this one)")
    from kapos_tools.flash import pico_cli

    pico_cli.add_arguments(p)  # --board pico-w: mpy-cross + mpremote (docs/pico.md)
    p.set_defaults(func=cmd_flash)
    return p


def cmd_flash(args):
    from kapos_tools.flash import pico_cli, runner

    repo = args.repo or default_repo()
    if pico_cli.is_pico(args.board, repo):
        return pico_cli.cmd(args, repo)
    if not args.target:
        from kapos.errors import ConfigError

        raise ConfigError("--target USER@HOST is required for a Raspberry Pi board")
    plan = build_plan(args.board, args.target, repo, port=args.ssh_port)  # ConfigError: usage error
    if args.dry_run:
        runner.dry_run(plan, sys.stdout)
        return EXIT_OK
    return runner.run(plan)
