"""Run a flash plan: each command with subprocess, a progress bar, stop at the first failure."""

import subprocess

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kapos_tools.flash.plan import advice, check_probe, parse_probe

TAIL = 15  # lines of a failed command's output shown


def dry_run(plan, out):
    """Every command, one per line (stdin as a here-document), nothing run."""
    for step in plan.steps:
        out.write("# %s\n" % step.title)
        for command in step.commands:
            out.write(command.shell() + "\n")
            if command.probe:
                out.write("# (stops here and prints the config.txt lines to add if the board's "
                          "SPI / I2C / UART is not enabled)\n")


def _host_of(target, plan):
    host = target.split("@", 1)[1]
    port = getattr(plan, "port", None)
    return "'[%s]:%d'" % (host.strip("[]"), port) if port and port != 22 else host


def _explain(step, command, result, plan):
    """Lines saying which command failed, its output's tail and the likely fix."""
    target = plan.target
    output = (result.stderr or result.stdout or "").strip().splitlines()
    lines = ["Failed: %s (exit %d)" % (step.title, result.returncode), "  " + command.shell().splitlines()[0]]
    lines += ["    " + line for line in output[-TAIL:]]
    err = result.stderr or ""
    if result.returncode == 255 and command.argv[0] in ("ssh", "rsync") and "Host key verification failed" in err:
        port = " -p %d" % plan.port if getattr(plan, "port", None) else ""
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            lines.append("the Pi's host key changed (a re-imaged SD card?): if that is expected, remove the old "
                         "key with ssh-keygen -R %s, then log in once with ssh%s %s to check and accept the new one"
                         % (_host_of(target, plan), port, target))
        else:
            lines.append("this computer does not know the Pi's host key yet: log in once with ssh%s %s, "
                         "check the fingerprint and accept it, then run kapos flash again" % (port, target))
    elif result.returncode == 255 and command.argv[0] == "ssh":
        port = " -p %d" % plan.port if getattr(plan, "port", None) else ""
        lines.append("ssh could not log in: check the address%s, and that key login works (ssh-copy-id%s %s)"
                     % (" and port" if port else "", port, target))
    elif "a password is required" in (result.stderr or ""):
        lines.append("sudo asked for a password: the login user needs passwordless sudo on the Pi")
    return lines


def run(plan, console=None, run_process=subprocess.run):
    """Execute the plan; return 0, or 1 after printing what failed and how to fix it."""
    console = console or Console()

    def say(text, style=None):
        console.print(text, style=style, markup=False, highlight=False)

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("starting", total=len(plan.commands()))
        for step in plan.steps:
            progress.update(task, description=step.title)
            for command in step.commands:
                try:
                    result = run_process(command.argv, input=command.stdin, capture_output=True, text=True)
                except FileNotFoundError:
                    progress.stop()
                    say("%s: %s is not installed on this computer" % (step.title, command.argv[0]), "red")
                    return 1
                if result.returncode != 0:
                    progress.stop()
                    say("\n".join(_explain(step, command, result, plan)), "red")
                    return 1
                if command.probe:
                    answers = parse_probe(result.stdout)
                    problems = check_probe(plan.board, answers)
                    if problems:
                        progress.stop()
                        say(advice(problems, answers.get("config") or "/boot/firmware/config.txt"), "yellow")
                        return 1
                progress.advance(task)
        progress.update(task, description="done")
    port = " -p %d" % plan.port if getattr(plan, "port", None) else ""
    say("kapos is installed and running. Logs: ssh%s %s journalctl -u kapos -f" % (port, plan.target), "green")
    return 0
