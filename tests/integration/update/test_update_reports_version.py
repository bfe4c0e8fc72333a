"""An installed release reports its own version (48 SV) in the terminal's 0800s, so the
host's terminals view (`kapos host terminals`, the dashboard) shows what runs."""

import asyncio

from kapos.host import private48
from kapos.update import agent as agent_mod
from kapos.harness import started
from kapos.wiring import Assembly
from kapos_tools.host.server import HostServer


def test_the_installed_release_version_is_what_the_host_sees(tmp_path, monkeypatch):
    monkeypatch.setattr(agent_mod, "running_version", lambda: "2.0.0")
    seen = []  # field 48 items of every 0800 the reference host checked
    check = HostServer._terminal_status

    def spy(server, message):
        if message.get(48):
            seen.append(private48.parse(message))
        return check(server, message)

    monkeypatch.setattr(HostServer, "_terminal_status", spy)
    assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path / "data"))])
    try:
        agent_mod.UpdateAgent(assembly, str(tmp_path / "root"))

        async def go():
            async with started(assembly):
                assert (await assembly.authorizer.echo())["ok"]

        asyncio.run(go())
    finally:
        assembly.close()
    assert seen and all(items.get(private48.SOFTWARE_VERSION) == "2.0.0" for items in seen)


def test_a_checkout_reports_the_package_version(tmp_path, monkeypatch):
    import kapos

    monkeypatch.setattr(agent_mod, "running_version", lambda: None)
    assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path / "data"))])
    try:
        agent_mod.UpdateAgent(assembly, str(tmp_path / "root"))
        assert assembly.authorizer.software_version == kapos.__version__
    finally:
        assembly.close()
