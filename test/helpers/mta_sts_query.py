#!/usr/bin/python3
"""Debian's postfix-mta-sts-resolver (what `mta-sts-query DOMAIN` runs) pointed at the tests'
loopback servers: its STSResolver unchanged, only where it connects is redirected: DNS
questions go to the test DNS server (c-ares' port option), the policy host's address comes
from there too and the HTTPS connection goes to the test server's port (an aiohttp resolver
that answers with that port), and the test CA is trusted besides the system's.

usage: mta_sts_query.py DOMAIN DNS_IP DNS_PORT POLICY_PORT CA_FILE
prints: {"result": "VALID" | "NONE" | "FETCH_ERROR" | "NOT_CHANGED", "id": ..., "policy": {...}}
"""
import asyncio
import json
import socket
import ssl
import sys

import aiodns
import aiohttp
from aiohttp.abc import AbstractResolver

from postfix_mta_sts_resolver import resolver as sts

domain, dns_ip, dns_port, policy_port, ca_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


class TestDnsResolver(AbstractResolver):
    """Names resolved through the test DNS server; the port is the policy server's."""

    def __init__(self, dns):
        self._dns = dns

    async def resolve(self, host, port=0, family=socket.AF_INET):
        answers = await self._dns.query(host, 'A')
        return [{'hostname': host, 'host': a.host, 'port': policy_port, 'family': socket.AF_INET,
                 'proto': 0, 'flags': socket.AI_NUMERICHOST} for a in answers]

    async def close(self):
        pass


async def main():
    loop = asyncio.get_running_loop()
    dns = aiodns.DNSResolver(nameservers=[dns_ip], loop=loop, udp_port=dns_port, tcp_port=dns_port)
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)

    class Session(aiohttp.ClientSession):
        def __init__(self, *args, **kwargs):
            kwargs['connector'] = aiohttp.TCPConnector(resolver=TestDnsResolver(dns), ssl=context)
            super().__init__(*args, **kwargs)

    sts.aiohttp.ClientSession = Session
    resolver = sts.STSResolver(loop=loop)
    resolver._resolver = dns
    status, found = await resolver.resolve(domain)
    out = {'result': status.name}
    if found:
        out['id'], policy = found
        out['policy'] = {'mode': policy.get('mode'), 'mx': policy.get('mx'), 'max_age': policy.get('max_age')}
    print(json.dumps(out))


asyncio.run(main())
