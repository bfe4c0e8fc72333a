"""Switch to a new release, trial-boot it, confirm it or fall back to the previous one.

The order of writes is what makes a power cut harmless at every point:

  1. releases/<new> is complete and verified (install renames it into place last);
  2. state.json gets trial = {version: new, previous: old, boots: 0};
  3. `current` is renamed to point at <new>;
  4. the service restarts. Before every start `boot_check()` runs:
     - trial set but `current` is not the trial version: the switch never happened, the
       trial is dropped (the old version runs, the update is tried again later);
     - trial set, first start of the new version: boots = 1, start it;
     - trial set and the new version already started once without confirming (it crashed,
       hung past its deadline or failed its checks): `current` goes back to the previous
       version and the new one is refused from now on;
     - `current` does not verify (should never happen): back to the newest release that does.
  5. the new version passes its self-test and host echo within the deadline: confirm()
     clears the trial.
"""

import logging
import time

from kapos.errors import UpdateError
from kapos.update.layout import Layout, parse_version, verify_release_dir

log = logging.getLogger("kapos.update")

DEFAULT_DEADLINE = 120.0  # seconds the new version has to confirm itself


def begin(layout, version, deadline=DEFAULT_DEADLINE):
    """Steps 2 and 3: the new release (already installed and verified) becomes current."""
    verify_release_dir(layout.release_dir(version))
    state = layout.state()
    old = layout.current()
    state["trial"] = {"version": version, "previous": old, "boots": 0,
                      "started": time.time(), "deadline": deadline}
    state["pending"] = None
    layout.write_state(state)
    layout.switch(version)
    log.warning("update: switched to %s (trial boot; previous %s)", version, old or "base install")


def confirm(layout, version):
    """Step 5: the running trial version passed its checks."""
    state = layout.state()
    trial = state["trial"]
    if not trial or trial["version"] != version or layout.current() != version:
        return False
    state["previous"] = trial["previous"]
    state["trial"] = None
    state["highest"] = _higher(state.get("highest"), version)
    layout.record(state, version, "confirmed")
    layout.write_state(state)
    layout.prune({version, state["previous"]})
    log.warning("update: %s confirmed itself", version)
    return True


def roll_back(layout, reason):
    """The trial version failed: back to the previous one, refuse this one from now on."""
    state = layout.state()
    trial = state["trial"]
    if not trial:
        return None
    failed, previous = trial["version"], trial["previous"]
    if previous is not None:
        try:
            verify_release_dir(layout.release_dir(previous))
        except UpdateError as exc:
            log.error("update: previous release %s does not verify (%s): back to the base install",
                      previous, exc)
            previous = None
    layout.switch(previous)
    state["trial"] = None
    if failed not in state["refused"]:
        state["refused"].append(failed)
    layout.record(state, failed, "rolled back", reason)
    layout.write_state(state)
    log.error("update: %s rolled back to %s: %s", failed, previous or "base install", reason)
    return previous


def boot_check(root, now=None):
    """Step 4, before every start of the service. Returns a line saying what it did."""
    layout = Layout(root)
    layout.ensure()
    now = time.time() if now is None else now
    state = layout.state()
    trial = state["trial"]
    current = layout.current()
    if trial:
        if current != trial["version"]:
            state["trial"] = None
            layout.record(state, trial["version"], "interrupted", "power cut before the switch")
            layout.write_state(state)
            return "trial of %s dropped: the switch had not happened; running %s" % (
                trial["version"], current or "base install")
        if trial["boots"] >= 1:
            reason = "did not confirm itself after its first start"
            if now > trial["started"] + trial["deadline"]:
                reason = "did not confirm itself within %d s" % trial["deadline"]
            previous = roll_back(layout, reason)
            return "rolled back %s to %s: %s" % (trial["version"], previous or "base install", reason)
        trial["boots"] += 1
        layout.write_state(state)
        current_ok = _verifies(layout, current)
        if current_ok:
            return "trial boot of %s" % current
        previous = roll_back(layout, "release does not verify")
        return "rolled back %s to %s: release does not verify" % (current, previous or "base install")
    if current is None or _verifies(layout, current):
        return "running %s" % (current or "base install")
    fallback = None
    for version in reversed(layout.installed()):
        if version != current and _verifies(layout, version):
            fallback = version
            break
    layout.switch(fallback)
    layout.record(state, current, "rolled back", "release does not verify")
    layout.write_state(state)
    return "%s does not verify: running %s" % (current, fallback or "base install")


def _verifies(layout, version):
    try:
        return verify_release_dir(layout.release_dir(version)) == version
    except UpdateError as exc:
        log.error("update: %s", exc)
        return False


def _higher(a, b):
    if a is None:
        return b
    return a if parse_version(a) >= parse_version(b) else b


def main(argv=None):
    """`python -m kapos.update.trial --root DIR`: the boot check (systemd ExecStartPre)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="kapos-bootcheck")
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    try:
        print("kapos boot check: " + boot_check(args.root), flush=True)
    except UpdateError as exc:  # never keep the terminal from starting: the base install runs
        print("kapos boot check: %s" % exc, file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
