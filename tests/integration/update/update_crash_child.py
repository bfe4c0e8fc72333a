"""One service lifetime of an updating terminal, for the kill -9 test: boot check, confirm a
pending trial (as the agent does after its checks), then check, download, install, switch
and the restart's boot check and confirm. Prints each phase as it starts."""

import sys

from kapos.update import trial
from kapos.update.client import UpdateClient
from kapos.update.layout import Layout


def phase(name):
    print(name, flush=True)


def main(root):
    layout = Layout(root)
    phase("boot-check")
    trial.boot_check(root)
    state = layout.state()
    if state["trial"]:
        phase("trial-confirm")
        trial.confirm(layout, layout.current())
    client = UpdateClient(root)
    phase("verify-metadata")
    offer = client.check(layout.current(), layout.state()["refused"])
    if offer is None:
        phase("up-to-date")
        return 0
    phase("download")
    tarball = client.download(offer)
    phase("install")
    client.install(offer, tarball)
    phase("switch")
    trial.begin(layout, offer.version)
    phase("restart-boot-check")
    trial.boot_check(root)
    phase("trial-confirm")
    trial.confirm(layout, offer.version)
    phase("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
