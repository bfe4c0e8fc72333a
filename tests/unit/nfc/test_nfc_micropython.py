"""The NFC stack and the MFRC522 driver under real MicroPython (the WebAssembly build from
npm, `@micropython/micropython-webassembly-pyscript`): a scenario is run once on CPython
against the emulator with its SPI traffic recorded, then replayed under MicroPython; the
driver must send byte-identical MOSI and reach the same results.

`make test` installs node and the pinned package into tools/mpy/node_modules (skipped only
where neither can be had; $KAPOS_MPJS_DIR may point at another install)."""

import json
import os
import shutil
import subprocess

import pytest

import kapos
from kapos.drivers.mfrc522 import Mfrc522
from kapos.ports.sim.mfrc522_emu import EmvTestCard, MifareClassic1K, Mfrc522Emulator

PKG = "@micropython/micropython-webassembly-pyscript"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(kapos.__file__))))

SCENARIO = '''
from kapos.emv.tap import TrackReader
from kapos.nfc import iso14443a, reader


def scenario(chip):
    out = []
    for _ in range(3):
        t = iso14443a.activate(chip)
        if t is None:
            out.append(None)
            continue
        track2, token = reader.read_target(chip, t, read_dep=TrackReader())
        out.append((t.uid, t.sak, track2, token))
    out.append(chip.calc_crc(b"\\x12\\x34"))
    return out
'''

REPLAY = '''
import json, sys
sys.path.insert(0, "/run")
from binascii import unhexlify
from scenario import scenario
from kapos.drivers.mfrc522 import Mfrc522

log = json.load(open("/run/transcript.json"))


class Replay:
    i = 0

    def transfer(self, data):
        mosi, miso = log[self.i]
        if bytes(data) != unhexlify(mosi):
            raise AssertionError("transfer %d differs" % self.i)
        self.i += 1
        return unhexlify(miso)


bus = Replay()
print("RESULT " + repr(scenario(Mfrc522(bus))))
print("REPLAYED %d" % bus.i)
'''

RUNNER = '''
import { loadMicroPython } from "%(pkg)s";
import fs from "fs";
import path from "path";
const mp = await loadMicroPython({stdout: (l) => process.stdout.write(l + "\\n")});
function mkdirp(p) { let c = ""; for (const s of p.split("/").filter(Boolean)) { c += "/" + s; try { mp.FS.mkdir(c); } catch (e) {} } }
function copy(src, dst, names) {
  mkdirp(dst);
  for (const f of fs.readdirSync(src)) {
    if ((f.endsWith(".py") || f.endsWith(".json")) && (!names || names.includes(f))) {
      mp.FS.writeFile(dst + "/" + f, fs.readFileSync(path.join(src, f)));
    }
  }
}
const K = %(kapos)s;
copy(K, "/kapos", ["__init__.py", "compat.py", "errors.py"]);
copy(K + "/hal", "/kapos/hal");
copy(K + "/nfc", "/kapos/nfc");
copy(K + "/emv", "/kapos/emv");
copy(K + "/drivers", "/kapos/drivers", ["__init__.py", "mfrc522.py"]);
copy(%(run)s, "/run");
mp.runPython(fs.readFileSync(%(replay)s, "utf8"));
'''


def _package_dir():
    for base in (os.environ.get("KAPOS_MPJS_DIR"), os.path.join(ROOT, "tools", "mpy"), ROOT):
        if base and os.path.isdir(os.path.join(base, "node_modules", PKG)):
            return base
    return None


def test_driver_and_stack_replay_byte_identical_under_micropython(tmp_path):
    base = _package_dir()
    if shutil.which("node") is None or base is None:
        pytest.skip("node or %s not installed" % PKG)
    run = tmp_path / "run"
    run.mkdir()
    (run / "scenario.py").write_text(SCENARIO)
    namespace = {}
    exec(SCENARIO, namespace)

    emu = Mfrc522Emulator()
    log = []

    class Recorder:
        def transfer(self, data):
            out = emu.transfer(data)
            log.append((bytes(data).hex(), out.hex()))
            return out

    chip = Mfrc522(Recorder())
    emu.add_card(EmvTestCard(bytes.fromhex("04112233445566"), record_padding=150))  # chained record
    emu.add_card(MifareClassic1K(bytes.fromhex("01020304"), blocks={4: b"TOKEN-0000000042"}))
    expected = namespace["scenario"](chip)
    assert expected[0][3] == b"TOKEN-0000000042" and expected[1][2].startswith("4761")
    (run / "transcript.json").write_text(json.dumps(log))
    (tmp_path / "replay.py").write_text(REPLAY)
    runner = base + "/kapos-mpjs-%d.mjs" % os.getpid()  # next to node_modules, so the import resolves
    with open(runner, "w") as f:
        f.write(RUNNER % {"pkg": PKG, "kapos": json.dumps(os.path.dirname(kapos.__file__)),
                          "run": json.dumps(str(run)), "replay": json.dumps(str(tmp_path / "replay.py"))})
    try:
        out = subprocess.run(["node", runner], capture_output=True, text=True, timeout=300)
    finally:
        os.remove(runner)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "RESULT " + repr(expected) in out.stdout
    assert "REPLAYED %d" % len(log) in out.stdout
