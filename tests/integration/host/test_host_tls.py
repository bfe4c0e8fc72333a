"""TLS on the TCP host link with a pinned private CA (docs/host.md): the terminal trusts
only its CA file and checks the host name."""

import pytest

from hostkit import MERCHANT, TERMINAL, make_tls_material, new_ledger, request, run, swipe
from kapos.errors import HostUnavailable
from kapos.io import journal as J
from kapos.io.host_link import HostAuthorizer
from kapos.io.journal import Journal
from kapos.io.transport import TcpTransport, tls_client_context
from kapos_tools.host import HostServer, tls_server_context


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    paths = make_tls_material(tmp_path_factory.mktemp("tls"))
    if paths is None:
        pytest.skip("openssl CLI not available to make test certificates")
    return paths


def sale_over_tls(directory, tls, ca, hostname):
    async def go():
        ledger = new_ledger()
        server = HostServer(ledger)
        _, port = await server.start_tcp("127.0.0.1", 0,
                                         tls_server_context(tls["cert"], tls["key"]))
        journal = Journal(str(directory / "journal"))
        transport = TcpTransport("127.0.0.1", port, tls=tls_client_context(ca),
                                 server_hostname=hostname, connect_timeout=2.0)
        auth = HostAuthorizer(transport, journal, TERMINAL, MERCHANT, timeout=2.0)
        await auth.start()
        try:
            reply = await auth.authorize(request(1, "sale", 1000, swipe("visa-debit")))
            return reply, ledger.balance("4111111111111111")
        finally:
            status = journal.find_by_ref(1)["status"] if journal.find_by_ref(1) else None
            await auth.aclose()
            await server.close()
            ledger.close()
            sale_over_tls.status = status

    return run(go())


def test_sale_over_tls_with_the_pinned_ca(tmp_path, tls):
    reply, balance = sale_over_tls(tmp_path, tls, tls["ca"], "localhost")
    assert reply["approved"] and balance == 99000


def test_a_host_certified_by_another_ca_is_refused(tmp_path, tls):
    with pytest.raises(HostUnavailable, match="Host unavailable"):
        sale_over_tls(tmp_path, tls, tls["other_ca"], "localhost")
    assert sale_over_tls.status == J.UNSENT  # refused before anything was sent


def test_a_wrong_host_name_is_refused(tmp_path, tls):
    with pytest.raises(HostUnavailable, match="Host unavailable"):
        sale_over_tls(tmp_path, tls, tls["ca"], "bank.example")
    assert sale_over_tls.status == J.UNSENT
