"""`kapos release`: signed update repositories (TUF), built from a checkout, signed offline.

    kapos release keygen --keys-dir ~/kapos-keys [--role ROLE] [--count N]
    kapos release init   --keys-dir ~/kapos-keys --repo site/ [--threshold root=2]
    kapos release build  --keys-dir ~/kapos-keys --repo site/ --version 2.0.0 [--channel stable] [--source .]
    kapos release params --keys-dir ~/kapos-keys --repo site/ --file params.toml [--channel stable]
    kapos release params --keys-dir ~/kapos-keys --repo site/ [--file params.toml] --technician-pin
    kapos release timestamp --keys-dir ~/kapos-keys --repo site/      # daily (cron): fresh timestamp
    kapos release rotate --keys-dir ~/kapos-keys --repo site/ --role targets
    kapos release status --repo site/

Keys are never in the repository or a git work tree (refused). docs/updates.md.
"""

import os
import sys

from kapos.errors import KaposError
from kapos_tools.release import keys as keys_mod


def _repo(args):
    from kapos_tools.release.repo import Repository

    return Repository(args.repo, args.keys_dir)


def cmd_keygen(args):
    keys_mod.check_keys_dir(args.keys_dir)
    roles = keys_mod.ROLES if args.role == "all" else (args.role,)
    for role in roles:
        for _ in range(args.count):
            signer = keys_mod.generate(args.keys_dir, role)
            print("%-9s key %s (in %s, mode 0600)" % (role, signer.public_key.keyid[:16],
                                                       os.path.join(args.keys_dir, role)))
    return 0


def _thresholds(items):
    out = {}
    for item in items:
        role, _, n = item.partition("=")
        if role not in keys_mod.ROLES or not n.isdigit() or int(n) < 1:
            raise KaposError("--threshold takes ROLE=N, e.g. root=2")
        out[role] = int(n)
    return out


def cmd_init(args):
    _repo(args).init(_thresholds(args.threshold))
    print("repository %s: root, targets, snapshot and timestamp version 1 signed" % args.repo)
    print("give terminals %s (kapos update init --trusted-root ...)" % os.path.join(args.repo, "metadata", "1.root.json"))
    return 0


def cmd_build(args):
    from kapos_tools.release.build import build_tarball

    data = build_tarball(args.source, args.version)
    name = _repo(args).release(args.channel, args.version, data, force=args.force, expires=args.expire_in)
    print("released %s on channel %s: %s (%d bytes), metadata signed" % (args.version, args.channel, name, len(data)))
    return 0


def cmd_params(args):
    import json
    import tomllib

    from kapos.app import config as config_mod
    from kapos.update import params as params_mod

    if not args.file and not args.technician_pin:
        raise KaposError("give a parameter file (--file), --technician-pin, or both")
    params = {}
    if args.file:
        try:
            with open(args.file, "rb") as f:
                params = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise KaposError("cannot read parameter file %s: %s" % (args.file, exc))
    if args.technician_pin:
        from kapos_tools.release.pins import ask_technician_pin_hash

        params.setdefault("security", {})["technician_pin_hash"] = ask_technician_pin_hash()
    repo = _repo(args)
    name = "params/%s.json" % args.channel
    try:
        with open(os.path.join(repo.targets_dir, *name.split("/"))) as f:
            serial = json.load(f)["serial"] + 1
    except (OSError, ValueError, KeyError):
        serial = 1
    doc = {"kind": params_mod.KIND, "serial": serial, "params": params}
    params_mod.check(doc, config_mod.load())  # refuse here what every terminal would refuse
    repo.add_targets({name: (json.dumps(doc, indent=1, sort_keys=True).encode(), None)})
    print("parameter set %d for channel %s published as %s" % (doc["serial"], args.channel, name))
    return 0


def cmd_timestamp(args):
    _repo(args).resign_timestamp(args.expire_in)
    print("timestamp re-signed")
    return 0


def cmd_rotate(args):
    keyid = _repo(args).rotate(args.role)
    print("%s key rotated: new key %s; old key moved to %s" % (
        args.role, keyid[:16], os.path.join(args.keys_dir, "retired", args.role)))
    return 0


def cmd_status(args):
    import json

    from tuf.api.metadata import Metadata

    for role in ("root", "targets", "snapshot", "timestamp"):
        md = Metadata.from_file(os.path.join(args.repo, "metadata", role + ".json"))
        print("%-9s version %-4d expires %s" % (role, md.signed.version, md.signed.expires.isoformat()))
    channels = os.path.join(args.repo, "targets", "channels")
    for name in sorted(os.listdir(channels)) if os.path.isdir(channels) else []:
        with open(os.path.join(channels, name)) as f:
            print("channel %-10s %s" % (name[:-5], json.load(f)["version"]))
    return 0


def register(subparsers):
    p = subparsers.add_parser("release", help="signed update repositories: keys, releases, parameters")
    sub = p.add_subparsers(dest="release_command", metavar="ACTION", required=True)

    def action(name, func, text, repo=True, keys=True):
        q = sub.add_parser(name, help=text)
        if keys:
            q.add_argument("--keys-dir", required=True, help="signing keys (never inside a repository)")
        if repo:
            q.add_argument("--repo", required=True, help="the repository directory a web server publishes")
        q.set_defaults(func=func)
        return q

    q = action("keygen", cmd_keygen, "make signing keys (ed25519, 0600)", repo=False)
    q.add_argument("--role", default="all", choices=("all",) + keys_mod.ROLES)
    q.add_argument("--count", type=int, default=1, help="keys per role (for thresholds above 1)")
    q = action("init", cmd_init, "create the repository's first metadata")
    q.add_argument("--threshold", action="append", default=[], metavar="ROLE=N")
    q = action("build", cmd_build, "build a release from a checkout and publish it on a channel")
    q.add_argument("--version", required=True)
    q.add_argument("--channel", default="stable")
    q.add_argument("--source", default=".", help="the checkout to build from (default: .)")
    q.add_argument("--force", action="store_true", help="allow a version not above the channel's")
    q = action("params", cmd_params, "publish a terminal parameter set (TOML) on a channel")
    q.add_argument("--file", help="the parameters (TOML, docs/updates.md)")
    q.add_argument("--technician-pin", action="store_true",
                   help="ask for a new technician PIN (twice, no echo) and publish its salted hash")
    q.add_argument("--channel", default="stable")
    q = action("timestamp", cmd_timestamp, "re-sign the timestamp (daily)")
    q = action("rotate", cmd_rotate, "replace a role's key")
    q.add_argument("--role", required=True, choices=keys_mod.ROLES)
    action("status", cmd_status, "versions and expiry of the metadata, channels", keys=False)
    for name in ("build", "timestamp"):
        sub.choices[name].add_argument("--expire-in", type=int, metavar="SECONDS", help="(tests) expiry")
    return p


if __name__ == "__main__":
    sys.exit("use: kapos release ...")
