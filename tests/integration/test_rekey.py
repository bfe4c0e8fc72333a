"""Tamper, then re-keying over the management channel (what `kapos keys load --connect`
sends): keys erased, terminal locked across a restart, unlocked by new keys only."""

import asyncio
import json

from terminalrig import Running
from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.security import dukpt
from kapos.app.management import ManagementServer
from kapos.wiring import Assembly


def test_tamper_locks_and_keys_over_the_management_channel_unlock(tmp_path):
    async def go():
        async with Running() as r:
            a = r.assembly
            server = ManagementServer(a.terminal, a.diagnostics, a.testcards, token="rekey-t0ken", test_mode=True,
                                      key_loader=a.load_keys, key_status=a.keystore.status)
            refused = await server.handle_line(json.dumps({"id": 0, "cmd": "keys_status"}))
            assert not refused["ok"] and "not authenticated" in refused["error"]
            assert (await server.handle_line(json.dumps({"cmd": "auth", "token": "rekey-t0ken"})))["ok"]
            status = await server.handle_line(json.dumps({"id": 1, "cmd": "keys_status"}))
            assert status["ok"] and status["keys"]["loaded"]
            await r.play('tamper "case opened"\nexpect state LOCKED\n')
            assert not a.keystore.loaded and a.keystore.tampered
            assert a.terminal.alerts[-1]["rule"] == "tamper"
            # a restart stays locked: the tamper mark survives, test keys are not re-loaded
            again = Assembly("sim", overrides=[("storage.data_dir", '"%s"' % r.data_dir)])
            assert again.keystore.tampered and not again.keystore.loaded
            again.close()
            ik_id = ik_id_for("KAPOS001")
            bad = await server.handle_line(json.dumps({"id": 2, "cmd": "keys_load", "ik": "00", "ik_id": "11"}))
            assert not bad["ok"] and "16 or 32 bytes" in bad["error"]
            ik = dukpt.derive_initial_key(TEST_BDK, ik_id)
            loaded = await server.handle_line(json.dumps({"id": 3, "cmd": "keys_load", "ik": ik.hex(),
                                                          "ik_id": ik_id.hex()}))
            assert loaded["ok"] and loaded["keys"]["loaded"] and ik.hex() not in json.dumps(loaded)
            await r.play("expect state IDLE\nkey 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\n"
                         "keys 1234\nkey ENTER\nexpect result approved\n")
            await server.close()

    asyncio.run(go())
