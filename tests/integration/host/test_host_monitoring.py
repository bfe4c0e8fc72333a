"""Monitoring at the host: the terminal's anomaly alerts arrive as 0620 advices and are
logged in the ledger; per-card velocity rules decline (65) a burst of debits; a copied
token UID without its anti-clone block is refused (63)."""

from hostkit import Rig, new_ledger, request, run, swipe, token


def test_alert_reaches_the_host_ledger(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            assert await rig.auth.alert({"rule": "read_error", "detail": "3 in 60 s"})
            alerts = rig.ledger.alerts()
            assert [(a["terminal_id"], a["rule"], a["detail"]) for a in alerts] == \
                [("KAPOS001", "read_error", "3 in 60 s")]

    run(go())


def test_velocity_rule_declines_a_burst_on_one_card(tmp_path):
    async def go():
        async with Rig(tmp_path, ledger=new_ledger(velocity=(3, 60))) as rig:
            codes = []
            for ref in range(1, 6):
                reply = await rig.auth.authorize(request(ref, "sale", 100, swipe("visa-debit")))
                codes.append(reply["code"])
            assert codes == ["00", "00", "00", "65", "65"]
            other = await rig.auth.authorize(request(9, "sale", 100, swipe("mc-credit"), pin="4321",
                                                     account="credit"))
            assert other["code"] == "00", "the rule is per card"
            refund = await rig.auth.authorize(request(10, "refund", 100, swipe("visa-debit")))
            assert refund["code"] == "00", "only debits count"
            assert rig.check() == []

    run(go())


def test_token_without_its_anti_clone_block_is_refused(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            genuine = await rig.auth.authorize(request(1, "sale", 100, token()))
            assert genuine["approved"]
            clone = request(2, "sale", 100, token())
            clone["token_data"] = None  # a card with the UID copied, nothing else
            refused = await rig.auth.authorize(clone)
            assert refused["code"] == "63"
            forged = request(3, "sale", 100, token())
            forged["token_data"] = bytes(16)
            assert (await rig.auth.authorize(forged))["code"] == "63"
            assert rig.check() == []

    run(go())


def test_older_token_counter_is_refused_after_reissue(tmp_path):
    from kapos.simdata.keys import TEST_TOKEN_KEY
    from kapos.security.token import make_token_block

    uid = bytes.fromhex("04A2B3C4D5E6F7")

    async def go():
        async with Rig(tmp_path) as rig:
            for ref, counter, code in ((1, 2, "00"), (2, 1, "63"), (3, 2, "00"), (4, 3, "00"), (5, 2, "63")):
                req = request(ref, "sale", 100, token())
                req["token_data"] = make_token_block(TEST_TOKEN_KEY, uid, counter)
                assert (await rig.auth.authorize(req))["code"] == code, (counter, code)

    run(go())


def test_wrong_pins_are_counted_and_lock_the_card(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            codes = []
            for ref, pin in enumerate(("9999", "1234", "9999", "9999", "9999", "1234"), 1):
                reply = await rig.auth.authorize(request(ref, "sale", 100, swipe("visa-debit"), pin=pin))
                codes.append(reply["code"])
            # a right PIN resets the count; the third wrong one in a row locks the card
            assert codes == ["55", "00", "55", "55", "75", "75"]
            rig.ledger.unlock_pin("4111111111111111")
            reply = await rig.auth.authorize(request(9, "sale", 100, swipe("visa-debit"), pin="1234"))
            assert reply["code"] == "00"
            assert rig.check() == []

    run(go())
