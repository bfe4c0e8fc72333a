"""The Pico W's self-test, run by `kapos flash` right after copying (and by hand:
`mpremote exec "from kapos.ports.micropython import selftest; selftest.run()"`).

It imports what the terminal loads, checks the AES block against the FIPS-197 C.1 vector
(cryptolib on a Pico, the pure-Python block elsewhere), reads the configuration and says
whether DUKPT keys are loaded - never a key or a counter's key material. The last line
is `KAPOS-SELFTEST OK ...` or `KAPOS-SELFTEST FAILED <what>`."""

import binascii

MODULES = ("kapos.core.machine", "kapos.host.sale_messages", "kapos.security.dukpt",
           "kapos.ports.micropython.hostlink", "kapos.ports.micropython.terminal",
           "kapos.ports.micropython.batch", "kapos.ports.micropython.devices")
# FIPS-197 appendix C.1 (AES-128)
KEY = "000102030405060708090a0b0c0d0e0f"
PLAIN = "00112233445566778899aabbccddeeff"
CIPHER = "69c4e0d86a7b0430d8cdb78070b4c55a"


def checks(config_path="/kapos.json", keys_path="/keys/dukpt.bin"):
    """[(name, ok, detail)]"""
    import json

    out = []
    for name in MODULES:
        try:
            __import__(name)
            out.append(("import " + name, True, ""))
        except Exception as e:  # noqa: BLE001  (a self-test reports, it does not stop)
            out.append(("import " + name, False, "%s: %s" % (type(e).__name__, e)))
    from kapos.security.aes import aes_encrypt_block

    block = aes_encrypt_block(binascii.unhexlify(KEY), binascii.unhexlify(PLAIN))
    out.append(("aes FIPS-197 C.1", binascii.hexlify(block).decode() == CIPHER, ""))
    try:
        with open(config_path) as f:
            config = json.load(f)
        out.append(("config", "terminal_id" in config and "host" in config, config_path))
    except (OSError, ValueError) as e:
        out.append(("config", False, "%s: %s" % (config_path, type(e).__name__)))
    from kapos.ports.micropython.keystate import FlashKeyState

    keys = FlashKeyState(keys_path)
    out.append(("keys loaded", keys.loaded, keys_path))
    return out


def run(config_path="/kapos.json", keys_path="/keys/dukpt.bin"):
    results = checks(config_path, keys_path)
    failed = [name for name, ok, _ in results if not ok]
    for name, ok, detail in results:
        print("%-40s %s %s" % (name, "ok" if ok else "FAILED", detail))
    if failed:
        print("KAPOS-SELFTEST FAILED " + ", ".join(failed))
    else:
        print("KAPOS-SELFTEST OK %d checks" % len(results))
    return not failed
