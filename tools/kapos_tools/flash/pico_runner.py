"""Run a Pico W flash plan (pico_plan.py): write the build directory, then each command,
stopping at the first failure with its output's tail; the self-test's verdict decides."""

import os
import shutil
import subprocess
import sys

from kapos_tools.flash import pico_build
from kapos_tools.flash.pico_plan import check_finish, write_files

TAIL = 15


def dry_run(plan, out, skip=()):
    out.write("# writes %s: main.py, kapos.json and dukpt.new (0600; the key state and the "
              "Wi-Fi password never appear on a command line), prepare.py, finish.py\n" % plan.files.build_dir)
    for step in plan.steps:
        if _skipped(step, skip):
            out.write("# skipped: %s\n" % step.title)
            continue
        out.write("# %s\n" % step.title)
        for command in step.commands:
            out.write(command.shell() + "\n")
            if command.probe:
                out.write("# (stops unless the device prints KAPOS-SELFTEST OK)\n")


def _skipped(step, skip):
    return any(step.title.startswith(prefix) for prefix in skip)


def resolve_argv(argv):
    """mpremote from PATH, else the one installed beside this Python (`-m mpremote`)."""
    if argv[0] == "mpremote" and shutil.which("mpremote") is None:
        here = os.path.join(os.path.dirname(sys.executable), "mpremote")
        return ([here] if os.path.exists(here) else [sys.executable, "-m", "mpremote"]) + argv[1:]
    return argv


def run(plan, say=print, run_process=subprocess.run, skip=(), timeout=300):
    """0 when every step ran and the device's self-test passed, else 1 (reason printed)."""
    pico_build.check_mpy_cross(plan.steps[0].commands[0].argv[0])  # ConfigError: wrong bytecode version
    write_files(plan)
    for step in plan.steps:
        if _skipped(step, skip):
            say("skipped: %s" % step.title)
            continue
        say(step.title)
        for command in step.commands:
            if command.argv[1:2] == ["-o"]:  # mpy-cross: its output directory first
                os.makedirs(os.path.dirname(command.argv[2]), exist_ok=True)
            try:
                result = run_process(resolve_argv(command.argv), capture_output=True, text=True, timeout=timeout)
            except FileNotFoundError:
                say("%s: %s is not installed (pip install 'kapos[pico]')" % (step.title, command.argv[0]))
                return 1
            except subprocess.TimeoutExpired:
                say("%s: no answer from the device in %d s: %s" % (step.title, timeout, command.shell()))
                return 1
            if result.returncode != 0:
                output = (result.stderr or result.stdout or "").strip().splitlines()
                say("\n".join(["Failed: %s (exit %d)" % (step.title, result.returncode), "  " + command.shell()]
                              + ["    " + line for line in output[-TAIL:]]))
                if "could not" in " ".join(output).lower() or "no device" in " ".join(output).lower():
                    say("Is the Pico W plugged in with MicroPython on it? (mpremote devs lists ports)")
                return 1
            if command.probe:
                failed = check_finish(result.stdout)
                for line in result.stdout.splitlines():
                    if line.startswith("KAPOS-"):
                        say("  " + line)
                if failed:
                    say("The self-test on the Pico W failed: %s" % failed)
                    return 1
    say("kapos is on the Pico W. Serial console: mpremote connect %s repl" % plan.target)
    return 0
