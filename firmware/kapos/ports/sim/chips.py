"""MFRC522 personalities for the emulator: the genuine NXP parts and the compatibles and
clones sold on cheap reader boards, as the driver sees them (VersionReg, start-up time).

The clones speak the same register set for ISO 14443 A; what a driver notices is an
unfamiliar VersionReg and, on some boards, a slower crystal start-up after NRSTPD rises.
Start-up times are the emulator's choice (a few ms), below the driver's 50 ms wait.
"""


class ChipPersonality:
    def __init__(self, key, version, name, oscillator_start_us):
        self.key = key
        self.version = version
        self.name = name
        self.oscillator_start_us = oscillator_start_us


PERSONALITIES = [
    ChipPersonality("mfrc522-v1", 0x91, "NXP MFRC522 v1.0", 2000.0),
    ChipPersonality("mfrc522-v2", 0x92, "NXP MFRC522 v2.0", 2000.0),
    ChipPersonality("mfrc522-v0", 0x90, "MFRC522 v0.0 (early or relabelled)", 2000.0),
    ChipPersonality("clone-0x12", 0x12, "unbranded RC522 clone", 8000.0),
    ChipPersonality("fm17522", 0x88, "Fudan FM17522", 5000.0),
    ChipPersonality("fm17522e", 0x89, "Fudan FM17522E", 5000.0),
    ChipPersonality("fm17522-v1", 0xB2, "Fudan FM17522 (VersionReg 0xB2)", 5000.0),
]
BY_KEY = dict((p.key, p) for p in PERSONALITIES)
BY_VERSION = dict((p.version, p) for p in PERSONALITIES)


def personality(chip=None, version=None):
    """The personality named `chip`, else the one whose VersionReg is `version` (an
    unlisted version gets the genuine chip's timing: tests of unknown chips)."""
    if chip is not None:
        if chip not in BY_KEY:
            raise ValueError("unknown chip personality %r (known: %s)" % (chip, ", ".join(sorted(BY_KEY))))
        return BY_KEY[chip]
    version = 0x92 if version is None else version
    return BY_VERSION.get(version) or ChipPersonality("custom", version, "VersionReg 0x%02X" % version, 2000.0)
