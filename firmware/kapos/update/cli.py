"""`kapos update`: the terminal's side of software updates, by hand.

    kapos update init  --root /opt/kapos/updates --url https://updates.example/kapos --trusted-root 1.root.json
    kapos update status --root DIR            # running, previous, last result, pending, trial
    kapos update check  --root DIR            # what the channel offers (everything verified)
    kapos update apply  --root DIR [--download-only]   # download (progress bar), install, switch
    kapos update bootcheck --root DIR         # what the service runs before every start

A running terminal (`kapos run --update-root DIR`) does check/apply itself and switches
only when idle; `apply` is for a stopped terminal. docs/updates.md.
"""

import os
import shutil
import sys

from kapos.errors import UpdateError
from kapos.update.layout import Layout, parse_version


_shown = {}


def _bar(stage, done, total, width=30):
    frac = done / total if total else 1.0
    filled = int(width * frac)
    if _shown.get(stage) == filled and done < total:
        return
    _shown[stage] = filled
    sys.stderr.write("\r%-8s [%s%s] %3d%% %7.2f/%.2f MB" % (stage, "#" * filled, "." * (width - filled),
                                                         frac * 100, done / 1e6, total / 1e6))
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_init(args):
    layout = Layout(args.root)
    layout.ensure()
    try:
        with open(args.trusted_root, "rb") as f:
            data = f.read()
        from tuf.api.metadata import Metadata

        Metadata.from_bytes(data)
    except OSError as exc:
        raise UpdateError("cannot read %s: %s" % (args.trusted_root, exc.strerror))
    except Exception:
        raise UpdateError("%s is not TUF root metadata" % args.trusted_root)
    trusted = os.path.join(layout.metadata, "root.json")
    if os.path.exists(trusted) and not args.force:
        raise UpdateError("%s already trusts a root (use --force to start over)" % args.root)
    shutil.copyfile(args.trusted_root, trusted)
    layout.write_config({"url": args.url.rstrip("/"), "channel": args.channel})
    print("update root %s: repository %s, channel %s" % (args.root, args.url, args.channel))
    return 0


def _running(layout):
    return layout.current()


def cmd_status(args):
    layout = Layout(args.root)
    state = layout.state()
    print("running   %s" % (layout.current() or "base install"))
    print("previous  %s" % (state["previous"] or "-"))
    last = state["last"]
    print("last      %s" % ("%s %s %s" % (last["version"], last["result"], last["reason"]) if last else "-"))
    trial = state["trial"]
    print("trial     %s" % ("%s (boots %d)" % (trial["version"], trial["boots"]) if trial else "-"))
    print("refused   %s" % (", ".join(state["refused"]) or "-"))
    print("installed %s" % (", ".join(layout.installed()) or "-"))
    return 0


def cmd_check(args):
    from kapos.update.client import UpdateClient

    client = UpdateClient(args.root)
    layout = client.layout
    offer = client.check(_running(layout), layout.state()["refused"])
    if offer is None:
        print("up to date (%s)" % (_running(layout) or "base install"))
        return 0
    print("update available: %s (%d bytes)" % (offer.version, offer.target.length))
    return 0


def cmd_apply(args):
    from kapos.update import trial
    from kapos.update.client import UpdateClient

    client = UpdateClient(args.root)
    layout = client.layout
    state = layout.state()
    offer = client.check(_running(layout), state["refused"])
    if offer is None:
        print("up to date (%s)" % (_running(layout) or "base install"))
        return 0
    progress = _bar if sys.stderr.isatty() or args.progress else None
    tarball = client.download(offer, progress)
    if args.download_only:
        print("downloaded and verified %s" % offer.version)
        return 0
    client.install(offer, tarball, progress)
    trial.begin(layout, offer.version, deadline=args.deadline)
    print("installed %s; it runs on trial at the next start (previous: %s)" % (
        offer.version, layout.state()["trial"]["previous"] or "base install"))
    return 0


def cmd_bootcheck(args):
    from kapos.update.trial import boot_check

    print(boot_check(args.root))
    return 0


def register(subparsers):
    p = subparsers.add_parser("update", help="software updates on this terminal (TUF-verified, A/B, trial boot)")
    sub = p.add_subparsers(dest="update_command", metavar="ACTION", required=True)

    def action(name, func, text):
        q = sub.add_parser(name, help=text)
        q.add_argument("--root", required=True, help="the update root (e.g. /opt/kapos/updates)")
        q.set_defaults(func=func)
        return q

    q = action("init", cmd_init, "set up an update root: repository URL, channel, trusted root")
    q.add_argument("--url", required=True)
    q.add_argument("--trusted-root", required=True, help="the repository's root metadata, obtained safely")
    q.add_argument("--channel", default="stable")
    q.add_argument("--force", action="store_true")
    action("status", cmd_status, "running, previous and pending versions, last result")
    action("check", cmd_check, "ask the repository (verified) whether a newer release exists")
    q = action("apply", cmd_apply, "download, verify, install and switch (stopped terminal)")
    q.add_argument("--download-only", action="store_true")
    q.add_argument("--progress", action="store_true", help="a progress bar even without a terminal window")
    q.add_argument("--deadline", type=float, default=120.0, help="seconds the new version has to confirm")
    action("bootcheck", cmd_bootcheck, "the check the service runs before every start")
    return p


__all__ = ["register", "parse_version"]
