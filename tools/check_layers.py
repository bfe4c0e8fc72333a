#!/usr/bin/env python3
"""Layer check: fails when an import breaks the architecture's direction.

Layers (docs/architecture.md):
  0 compat, errors, txn_types             (nothing but each other)
  1 card, host, security, nfc, hal, emv   (each may import only L0 and itself; emv also nfc;
                                          hal.output holds the Screen / Receipt values)
  2 core                                  (L0, L1 but not hal)
  3 drivers                               (L0, L1)
  4 ports.<runtime>                       (L0-L3, ports.shared, its own port only)
  4 io                                    (L0-L3 and itself: asyncio/sqlite/ssl/pyserial shells)
  5 app, simdata                          (L0-L3 and io; never a port; simdata: test cards
                                          and keys, L0-L1 only, imported by app and above)
  6 cli, boards, wiring, harness, console, local_target, update (anything)
  tools/ kapos_tools                      (anything in kapos; nothing imports it)
Portable layers (0-3) import only a small stdlib subset; third-party imports live in
ports, io (links, journal, key store), tools and tests (plus the one AES primitive in
security/aes.py); app stays third-party free so it only sees devices through the HAL.
"""

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "firmware", "kapos")
TOOLS = os.path.join(ROOT, "tools", "kapos_tools")

L1 = ("card", "host", "security", "nfc", "hal", "emv")
# L1 packages that build on another L1 package: the EMV kernel reads BER-TLV with nfc.tlv
L1_USES = {"emv": ("nfc",)}
PORTABLE_STDLIB = {"struct", "binascii", "asyncio", "micropython", "time",
                   "uasyncio", "utime", "ubinascii", "ustruct"}  # MicroPython spellings
PORTABLE_EXCEPTIONS = {
    "kapos.security.aes": {"Crypto", "cryptolib"},  # the one AES primitive
}


def layer_of(module):
    parts = module.split(".")
    if parts[0] == "kapos_tools":
        return ("tools", None)
    sub = parts[1] if len(parts) > 1 else "__init__"
    if sub in ("compat", "errors", "txn_types", "__init__"):
        return (0, sub)
    if sub in L1:
        return (1, sub)
    if sub == "core":
        return (2, sub)
    if sub == "drivers":
        return (3, sub)
    if sub == "ports":
        return (4, parts[2] if len(parts) > 2 else "ports")
    if sub == "io":
        return (4, "io")
    if sub in ("app", "simdata"):
        return (5, sub)
    return (6, sub)


def imports_of(path, module):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module.rsplit(".", 1)[0] if not path.endswith("__init__.py") else module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            yield node.lineno, name


def allowed(src, dst):
    """May module `src` import kapos module `dst`?"""
    (ls, ps), (ld, pd) = layer_of(src), layer_of(dst)
    if ls == "tools":
        return True
    if ld == "tools":
        return False
    if dst == "kapos":  # the package root only holds the version
        return True
    if ls == 0:
        return ld == 0
    if ls == 1:
        return ld == 0 or (ld == 1 and (pd == ps or pd in L1_USES.get(ps, ())))
    if ls == 2:
        return ld == 0 or (ld == 1 and pd != "hal") or ld == 2
    if ls == 3:
        return ld in (0, 1, 3)
    if ls == 4:
        if ps == "io" or pd == "io":
            return ld in (0, 1, 2, 3) or (ld == 4 and pd == ps)
        return ld in (0, 1, 2, 3) or (ld == 4 and pd in (ps, "shared"))
    if ls == 5 and ps == "simdata":
        return ld in (0, 1) or (ld == 5 and pd == "simdata")
    if ls == 5:
        return ld in (0, 1, 2, 3, 5) or (ld == 4 and pd == "io")
    return True


def module_name(path, base, prefix):
    rel = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
    if rel.endswith("__init__"):
        rel = rel[: -len(".__init__")] if rel != "__init__" else ""
    return prefix + ("." + rel if rel else "")


def python_files(base):
    for dirpath, _, files in os.walk(base):
        for f in sorted(files):
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def check():
    problems = []
    stdlib = set(sys.stdlib_module_names)
    sources = [(p, module_name(p, PKG, "kapos")) for p in python_files(PKG)]
    sources += [(p, module_name(p, TOOLS, "kapos_tools")) for p in python_files(TOOLS)]
    for path, module in sources:
        layer = layer_of(module)[0]
        for lineno, name in imports_of(path, module):
            top = name.split(".")[0]
            where = "%s:%d" % (os.path.relpath(path, ROOT), lineno)
            if top in ("kapos", "kapos_tools"):
                if not allowed(module, name):
                    problems.append("%s: %s (layer %s) must not import %s (layer %s)"
                                    % (where, module, layer, name, layer_of(name)[0]))
            elif layer in (0, 1, 2, 3):
                if top in PORTABLE_EXCEPTIONS.get(module, ()):
                    continue
                if top not in PORTABLE_STDLIB:
                    kind = "stdlib module" if top in stdlib else "third-party module"
                    problems.append("%s: portable module %s imports %s %s (not in the MicroPython subset)"
                                    % (where, module, kind, name))
            elif layer_of(module) == (5, "app") and top not in stdlib:
                problems.append("%s: %s imports third-party %s: put it in a port and inject it"
                                % (where, module, name))
    return problems, len(sources)


def main():
    problems, count = check()
    for problem in problems:
        print(problem)
    if problems:
        print("layer check: %d problem(s)" % len(problems))
        return 1
    print("layer check: %d modules, imports point one way" % count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
