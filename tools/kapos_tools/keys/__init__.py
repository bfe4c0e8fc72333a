"""`kapos keys`: test BDKs, key loading into a terminal, key status (never key values).

    kapos keys new-bdk --out bdk.json            # a random AES-128 BDK (file mode 0600)
    kapos keys load --terminal-id KAPOS001 --data-dir var [--bdk bdk.json]
    kapos keys load --terminal-id KAPOS001 --connect 127.0.0.1:7700 [--manage-token-file F] [--bdk bdk.json]
    kapos keys status --data-dir var [--show-token]   |   --connect HOST:PORT

    kapos keys token-block --uid 04A2B3C4D5E6F7 --counter 2   # write it to block 4 of the token

Without --bdk the public X9.24-3 test BDK is used (the reference host's default).
Over --connect the management token comes from --manage-token-file, $KAPOS_MANAGE_TOKEN,
$KAPOS_MANAGE_TOKEN_FILE or var/manage-token (docs/diagnostics.md); `--show-token` prints
a terminal's token from its data directory (making it if the terminal never started).
"""

import binascii
import json
import os
import sys

from kapos.simdata.keys import TEST_BDK, TEST_BDK_ID, ik_id_for
from kapos.errors import KaposError
from kapos.security import dukpt
from kapos.io.files import atomic_write
from kapos.io.keystore import KeyStore


def read_bdk(path):
    if not path:
        return TEST_BDK, TEST_BDK_ID
    try:
        with open(path) as f:
            doc = json.load(f)
        bdk = binascii.unhexlify(doc["bdk"])
        bdk_id = binascii.unhexlify(doc["bdk_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise KaposError("cannot read BDK file %s (%s)" % (path, type(exc).__name__))
    if len(bdk) not in (16, 32) or len(bdk_id) != 4:
        raise KaposError("BDK file %s: bdk must be 16 or 32 bytes and bdk_id 4 bytes" % path)
    return bdk, bdk_id


def cmd_new_bdk(args):
    if os.path.exists(args.out) and not args.force:
        raise KaposError("%s exists (use --force to replace it)" % args.out)
    doc = {"bdk": os.urandom(16).hex().upper(), "bdk_id": os.urandom(4).hex().upper(),
           "note": "kapos test BDK: keep it secret, give it to your host only"}
    atomic_write(args.out, json.dumps(doc, indent=1).encode())
    print("wrote a new AES-128 BDK to %s (mode 0600), BDK ID %s" % (args.out, doc["bdk_id"]))
    return 0


def _remote(args, cmd, **fields):
    """One request over the terminal's management channel (the key goes only there)."""
    import asyncio

    from kapos_tools.diag.client import ManagementClient, ManagementError, find_token

    async def go():
        token = find_token(args.token, args.manage_token_file)
        client = await ManagementClient.open(args.connect, token=token)
        try:
            return await client.call(cmd, **fields)
        finally:
            await client.close()

    try:
        return asyncio.run(go())
    except ManagementError as exc:
        raise KaposError("terminal refused: %s" % exc)


def cmd_load(args):
    bdk, bdk_id = read_bdk(args.bdk)
    ik_id = ik_id_for(args.terminal_id, bdk_id)
    ik = dukpt.derive_initial_key(bdk, ik_id)
    if args.connect:
        reply = _remote(args, "keys_load", ik=ik.hex(), ik_id=ik_id.hex())
        status = reply.get("keys", {})
    else:
        store = KeyStore(args.data_dir)
        store.install(ik, ik_id, source="kapos keys load")
        status = store.status()
    print("keys loaded for terminal %s: IK ID %s, next KSN %s" % (args.terminal_id, ik_id.hex().upper(),
                                                                   status.get("ksn")))
    return 0


def cmd_status(args):
    if args.show_token:
        if args.connect:
            raise KaposError("--show-token reads the terminal's data directory (--data-dir): "
                             "the token never crosses the management channel")
        from kapos.app.mgmt_auth import load_or_create_token, token_path

        token = load_or_create_token(args.data_dir)
        print("management token (in %s, mode 0600): %s" % (token_path(args.data_dir), token))
    if args.connect:
        status = _remote(args, "keys_status").get("keys", {})
    else:
        status = KeyStore(args.data_dir).status()
    for key in ("loaded", "tampered", "ik_id", "ksn", "counter", "source"):
        if key in status:
            print("%-9s %s" % (key, status[key]))
    return 0 if status.get("loaded") else 1


def cmd_token_block(args):
    """The anti-clone block to write into a closed-loop token (MIFARE Classic block 4)."""
    from kapos.simdata.keys import TEST_TOKEN_KEY
    from kapos.security.token import make_token_block

    try:
        uid = bytes.fromhex(args.uid)
        key = bytes.fromhex(args.token_key) if args.token_key else TEST_TOKEN_KEY
    except ValueError:
        raise KaposError("--uid and --token-key must be hex")
    if len(uid) not in (4, 7, 10):
        raise KaposError("a UID is 4, 7 or 10 bytes")
    if len(key) not in (16, 32):
        raise KaposError("--token-key must be 16 or 32 bytes")
    print(make_token_block(key, uid, args.counter).hex().upper())
    return 0


def register(subparsers):
    p = subparsers.add_parser("keys", help="test BDKs, key loading and key status (never key values)")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    n = sub.add_parser("new-bdk", help="write a random AES-128 test BDK file (0600)")
    n.add_argument("--out", required=True)
    n.add_argument("--force", action="store_true")
    n.set_defaults(func=cmd_new_bdk)
    t = sub.add_parser("token-block", help="the anti-clone block to write into a closed-loop token")
    t.add_argument("--uid", required=True, help="the token's UID (hex)")
    t.add_argument("--counter", type=int, default=1, help="issue counter: raise it to revoke older copies")
    t.add_argument("--token-key", help="hex (default: the public test token key the reference host uses)")
    t.set_defaults(func=cmd_token_block)
    for name, func, text in (("load", cmd_load, "derive a terminal's initial key and load it"),
                             ("status", cmd_status, "show a terminal's key status")):
        q = sub.add_parser(name, help=text)
        where = q.add_mutually_exclusive_group()
        where.add_argument("--data-dir", default="var", help="the terminal's data directory (local)")
        where.add_argument("--connect", help="HOST:PORT of the terminal's management channel")
        q.add_argument("--manage-token-file", metavar="FILE", help="file holding the management token")
        q.add_argument("--token", help="the management token itself (works, but shows in ps: warned)")
        if name == "load":
            q.add_argument("--terminal-id", required=True)
            q.add_argument("--bdk", help="BDK file from `kapos keys new-bdk` (default: the public test BDK)")
        else:
            q.add_argument("--show-token", action="store_true",
                           help="also print the terminal's management token (from --data-dir)")
        q.set_defaults(func=func)
    return p


if __name__ == "__main__":
    sys.exit("use: kapos keys ...")
