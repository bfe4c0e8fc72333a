"""The Pico W's open batch: its number and reconciliation totals, kept in the flash
filesystem (one small JSON file, temp file + rename) so a power cut loses no approved
sale from the totals. The totals follow the same rules as the Pi and the reference host
(`kapos.host.totals.add_to_totals`). `close()` starts the next batch on flash before the
0500 for the closed one is sent, as on the Pi; a closed batch stays on flash until its
0510 arrives (`settled()`), and the next `close()` returns it again unchanged."""

import json
import os

from kapos.errors import ConfigError
from kapos.host.sale_messages import TOTALS_FIELDS


def _zero():
    totals = {}
    for key in TOTALS_FIELDS:
        totals[key] = 0
    return totals


class BatchTotals:
    def __init__(self, path):
        self.path = path
        self.number = 1
        self.totals = _zero()
        self.closing = None  # (number, totals) sent and not yet answered
        try:
            with open(path) as f:
                doc = json.load(f)
        except OSError:
            return  # first start: batch 1, nothing in it
        except ValueError:
            raise ConfigError("%s is not a batch file (move it away to start batch 1)" % path)
        if type(doc) is not dict or type(doc.get("number")) is not int or type(doc.get("totals")) is not dict:
            raise ConfigError("%s is not a batch file (move it away to start batch 1)" % path)
        self.number = doc["number"]
        self.totals = self._checked(doc["totals"])
        closing = doc.get("closing")
        if closing is not None:
            if type(closing) is not dict or type(closing.get("number")) is not int:
                raise ConfigError("%s is not a batch file (move it away to start batch 1)" % path)
            self.closing = (closing["number"], self._checked(closing.get("totals") or {}))

    def _checked(self, doc):
        totals = _zero()
        for key in totals:
            value = doc.get(key, 0)
            if type(value) is not int or value < 0:
                raise ConfigError("%s: total %s is not a count" % (self.path, key))
            totals[key] = value
        return totals

    def _save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            doc = {"number": self.number, "totals": self.totals}
            if self.closing is not None:
                doc["closing"] = {"number": self.closing[0], "totals": self.closing[1]}
            json.dump(doc, f)
        os.rename(tmp, self.path)

    def add(self, txn_type, total):
        """One approved transaction (saved before this returns)."""
        from kapos.host.totals import add_to_totals

        add_to_totals(self.totals, txn_type, total)
        self._save()

    def close(self):
        """(number, totals) of the batch to settle; the next one is open on flash. A batch
        closed before and never answered comes back first, unchanged."""
        if self.closing is None:
            self.closing = (self.number, self.totals)
            self.number, self.totals = self.number + 1, _zero()
            self._save()
        return self.closing

    def settled(self):
        """The host answered the 0500 of the closed batch."""
        self.closing = None
        self._save()
