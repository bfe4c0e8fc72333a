# A frozen kapos firmware for the Raspberry Pi Pico W (docs/pico.md, "Frozen firmware").
# With the MicroPython source tree (v1.27) and the Pico SDK set up as its rp2 README says:
#
#   cd micropython/ports/rp2
#   make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/kapos/tools/mpy/pico_w_manifest.py
#
# The modules are compiled into the firmware image and run from flash: their bytecode,
# qstrs and constants take no heap. The file list is the one `kapos flash --board pico-w`
# copies (kapos_tools.flash.pico_build.source_files), so the two cannot drift apart.
# MicroPython runs a manifest from the manifest's own directory.
import os
import sys

HERE = os.path.abspath(".")
REPO = os.path.dirname(os.path.dirname(HERE))
FIRMWARE = os.path.join(REPO, "firmware")
for _path in (FIRMWARE, os.path.join(REPO, "tools")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from kapos_tools.flash.pico_build import source_files  # noqa: E402

include("$(BOARD_DIR)/manifest.py")  # noqa: F821  (the Pico W's own frozen modules: asyncio, network)
require("ssd1306")  # noqa: F821  (micropython-lib's OLED driver)
for _rel in source_files(REPO):
    module("kapos/" + _rel, base_path=FIRMWARE)  # noqa: F821
