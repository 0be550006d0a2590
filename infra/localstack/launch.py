"""Starts LocalStack with its twisted gateway listening on the host GATEWAY_LISTEN names only.

Twisted serves LocalStack's requests with about 0.6 of the CPU per call that hypercorn needs, but
LocalStack's twisted runtime server passes only the port to TCP4ServerEndpoint (a TODO in its
source), so it would listen on every interface. Sluice starts nothing that listens beyond
127.0.0.1: this launcher hands the configured host to twisted, then runs LocalStack's own main.
"""

import os
import runpy
import sys


def listen_host() -> str:
    listen = os.environ.get("GATEWAY_LISTEN", "")
    host = listen.split(",")[0].rpartition(":")[0]
    if not host or host in ("0.0.0.0", "::", "[::]"):
        sys.exit(f"launch.py: GATEWAY_LISTEN={listen!r} must name one loopback host:port")
    return host


def main() -> None:
    host = listen_host()
    from twisted.internet import endpoints

    tcp4 = endpoints.TCP4ServerEndpoint

    def tcp4_on_host(reactor, port, backlog=50, interface=""):
        return tcp4(reactor, port, backlog, interface or host)

    endpoints.TCP4ServerEndpoint = tcp4_on_host
    runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
