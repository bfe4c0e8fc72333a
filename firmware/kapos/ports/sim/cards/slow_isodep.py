"""An ISO-DEP card that asks for waiting time (S(WTX)) before every answer."""

from kapos.ports.sim.cards.isodep import IsoDepCard


class SlowIsoDepCard(IsoDepCard):
    """Asks for waiting time: before each answer it sends `wtx_rounds` S(WTX) requests with
    `wtxm`, then answers after (wtxm - 0.5) x FWT: later than FWT, so a reader that does
    not apply WTXM times out. `wtx_sent` counts the requests."""

    def __init__(self, uid, apdu_handler=None, wtx_rounds=1, wtxm=3, fwi=4, **options):
        IsoDepCard.__init__(self, uid, apdu_handler, fwi=fwi, **options)
        self.wtx_rounds = wtx_rounds
        self.wtxm = wtxm
        self.wtx_sent = 0
        self._wtx_left = 0

    def _respond(self):
        self._wtx_left = self.wtx_rounds
        return self._after_wtx()

    def _after_wtx(self):
        if self._wtx_left > 0:
            self._wtx_left -= 1
            self.wtx_sent += 1
            return self._send(bytes((0xF2, self.wtxm)), self.processing_us)
        return self._next_chunk((self.wtxm - 0.5) * self.fwt_us)
