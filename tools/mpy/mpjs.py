"""Run Python code inside MicroPython (the npm WebAssembly build) from CPython.

`make test` installs node (Debian) and the pinned package (tools/mpy/package.json) into
tools/mpy/node_modules; `missing()` says what is absent, `run()` executes a script
through tools/mpy/run.mjs with directories copied into MicroPython's filesystem."""

import json
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIRMWARE = os.path.join(ROOT, "firmware")
PACKAGE = "@micropython/micropython-webassembly-pyscript"
RUNNER = os.path.join(HERE, "run.mjs")


def package_dir():
    return os.path.join(HERE, "node_modules", PACKAGE)


def missing():
    """None when MicroPython can run here, else the reason it cannot."""
    if shutil.which("node") is None:
        return "node is not installed (make test installs Debian's nodejs as root)"
    if not os.path.isdir(package_dir()):
        return "%s is not installed in tools/mpy (cd tools/mpy && npm ci)" % PACKAGE
    return None


def run(script, copies=(), heap=None, bridge=False, timeout=300, kapos=True, steps=()):
    """Run `script` (Python source text) in MicroPython; returns CompletedProcess (text).

    copies: (host_dir, micropython_dir) pairs; kapos=True copies firmware/kapos to
    /lib/kapos (on sys.path in MicroPython). steps: source strings run one by one as
    separate top-level runs after `script` (the build collects garbage only between
    top-level runs: gc.collect() inside one does nothing)."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "main.py")
        with open(path, "w") as f:
            f.write(script)
        cmd = ["node", RUNNER]
        if heap:
            cmd += ["--heap", str(int(heap))]
        if bridge:
            cmd.append("--bridge")
        if steps:
            steps_path = os.path.join(tmp, "steps.json")
            with open(steps_path, "w") as f:
                json.dump(list(steps), f)
            cmd += ["--then", steps_path]
        pairs = list(copies)
        if kapos:
            pairs.insert(0, (os.path.join(FIRMWARE, "kapos"), "/lib/kapos"))
        for src, dst in pairs:
            cmd += ["--copy", "%s:%s" % (src, dst)]
        cmd.append(path)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
