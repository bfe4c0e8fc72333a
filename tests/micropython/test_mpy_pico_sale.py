"""The issue's must-show: a scripted sale and a settlement on the pico-w port's simulated
buses, run inside MicroPython from the .mpy files `kapos flash` copies, approved and
reconciled by the reference host over TCP on loopback. MicroPython's WebAssembly build has
no sockets, so its asyncio streams are bridged through node's `net` (tools/mpy/run.mjs
--bridge, loopback only); everything above the stream - ISO 8583, DUKPT PIN block, MACs,
field 48 EC, framing, the 0500 totals - is the firmware's own code in MicroPython."""

import pytest

import mpjs
import pico_run


def test_scripted_pico_w_sale_and_settlement_from_mpy_files_pass_the_reference_host(tmp_path):
    reason = mpjs.missing()
    if reason:
        pytest.skip(reason)
    lib = pico_run.build_mpy(str(tmp_path / "build"))
    lines, out, err = pico_run.run_sale(str(tmp_path), mpy_lib=lib)
    assert out.returncode == 0, out.stdout + out.stderr
    assert lines["OUTCOME"].startswith("approved"), out.stdout + err[-2000:]
    assert lines["RECEIPT"] == "1b40"  # ESC @ then the receipt lines on the UART
    # one KSN for the sale, one for the 0500; each next counter was on flash first
    assert lines["COUNTER"] == "3"
    assert "0200 KAPOS001" in err
    # the host's own totals agreed with the Pico's (a wrong total would say 'Not agreed (95)')
    assert "Totals agreed" in lines["SETTLE-SCREEN"] and "Batch 000001" in lines["SETTLE-SCREEN"], out.stdout
    assert lines["BATCH"] == "2"
    assert "0500 KAPOS001" in err
    f = pico_run.figures(lines)  # what make bench reports, measured on this run
    assert 0 < f["imports"] < f["start"] <= f["sale_live"] <= f["sale_bound"], f
