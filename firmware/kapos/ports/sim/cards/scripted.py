"""A card with no protocol of its own: a responder function answers every frame."""

from kapos.ports.sim.cards.base import VirtualCard


class ScriptedCard(VirtualCard):
    """No protocol at all: every frame is answered by responder(data, nbits), which
    returns None (silence), bytes, or (bytes, nbits). For fuzzing and odd cases."""

    def __init__(self, uid, responder):
        VirtualCard.__init__(self, uid)
        self.responder = responder

    def receive(self, data, nbits, encrypted):
        r = self.responder(bytes(data), nbits)
        if r is None:
            return None
        if isinstance(r, tuple):
            return (bytes(r[0]), r[1], self.fdt_us)
        return (bytes(r), len(r) * 8, self.fdt_us)
