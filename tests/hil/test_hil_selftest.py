"""The self-test through `terminal_target`: in process, through the management channel,
or on a real terminal (`--target tcp://HOST:PORT`), where it is the first thing a lab run
reports."""


def test_selftest_passes(terminal_target):
    async def go():
        async with terminal_target.open() as session:
            return await session.selftest()

    result = terminal_target.run(go)
    failed = ["%s: %s" % (c["name"], c["detail"]) for c in result["checks"] if not c["ok"]]
    assert result["passed"] and not failed, "failed checks: %s" % "; ".join(failed)
    assert {"display", "keypad", "printer", "host"} <= {c["name"] for c in result["checks"]}
