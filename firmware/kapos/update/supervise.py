"""What systemd does for the kapos service, for machines without it (and for tests):

    python -m kapos.update.supervise --root /opt/kapos/updates -- run --board rpi4 --headless ...

before every start: the boot check (trial.boot_check); then the terminal from
<root>/current/firmware (PYTHONPATH), or the base install when there is none. Exit code 75 (an
update or a parameter set asked for a restart) or a crash during a trial boot: start
again; any other exit ends the supervisor with that code. The supervisor itself always
runs from the base install, so a broken release cannot break the boot check.
"""

import argparse
import os
import subprocess
import sys

from kapos.update.trial import boot_check

EXIT_RESTART = 75


def child_env(root):
    env = dict(os.environ)
    current = os.path.join(os.path.abspath(root), "current", "firmware")
    env.pop("PYTHONPATH", None)
    if os.path.isdir(current):
        env["PYTHONPATH"] = current
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kapos-supervise")
    parser.add_argument("--root", required=True)
    parser.add_argument("--max-starts", type=int, default=20, help="give up after this many starts")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the `kapos` arguments")
    args = parser.parse_args(argv)
    kapos_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    code = 0
    for _ in range(args.max_starts):
        print("kapos supervise: " + boot_check(args.root), file=sys.stderr, flush=True)
        code = subprocess.call([sys.executable, "-m", "kapos.cli"] + kapos_args, env=child_env(args.root))
        print("kapos supervise: terminal exited with %d" % code, file=sys.stderr, flush=True)
        if code != EXIT_RESTART and code >= 0 and code != 1:
            return code
        # 75: restart asked for; 1 or a signal: a crash, which the next boot check judges
    return code


if __name__ == "__main__":
    sys.exit(main())
