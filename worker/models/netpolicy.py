"""Where a job's model may be fetched from: allow-listed hosts, and addresses that are public.

Two checks, both applied to the job's URI and again to every redirect and every connection:

- the host must be on ``ALLOWED_MODEL_HOSTS``: ``host`` (port 443), ``host:port`` (that port),
  or ``*.domain`` (any subdomain of ``domain``, port 443);
- every address the host resolves to must be global: private, loopback, link-local, CGNAT,
  multicast, reserved and documentation ranges are refused, unless a CIDR of
  ``MODEL_FETCH_ALLOWED_NETWORKS`` holds it. The metadata server is refused whatever the settings
  say. A host with one bad answer among good ones is refused as a whole; since every connection
  resolves again and connects only to an address it has just checked, a DNS answer that changes
  to a private one between two requests is refused too (DNS rebinding).

The resolver is a seam (``Resolver``): the default asks the system; tests give changing answers.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Resolver = Callable[[str, int], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# GCE/Cloud Run metadata (IPv4 and the IPv6 one some clouds use), refused whatever is allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal"})
DEFAULT_PORT = 443


class AddressRefused(Exception):
    """The host resolves to an address a model may not come from; the message says which."""


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses as the system resolves them (``OSError`` when it can't)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def host_allowed(host: str, port: int, rules: Sequence[str]) -> bool:
    """Whether ``host:port`` matches one of the allow-list's entries."""
    host = host.lower().rstrip(".")
    for rule in rules:
        name, _, rule_port = rule.partition(":")
        if (int(rule_port) if rule_port else DEFAULT_PORT) != port:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


@dataclass(frozen=True)
class AddressPolicy:
    allowed_networks: tuple[Network, ...] = ()
    resolve: Resolver = system_resolver

    @classmethod
    def of(cls, cidrs: Sequence[str], resolve: Resolver = system_resolver) -> AddressPolicy:
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs), resolve)

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` is refused, or None when a model may come from it."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address in METADATA_ADDRESSES:
            return "the metadata server"
        if any(address in net for net in self.allowed_networks):
            return None
        if address.is_global and not address.is_multicast:
            return None
        for kind in ("loopback", "link_local", "private", "multicast", "reserved"):
            if getattr(address, f"is_{kind}"):
                return f"a {kind.replace('_', '-')} address"
        return "not a public address"

    def addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and check every answer; ``AddressRefused`` if any is refused.

        ``OSError`` when the name does not resolve (a transient DNS fault or a wrong name).
        """
        if host.lower().rstrip(".") in METADATA_HOSTS:
            raise AddressRefused(f"{host} is the metadata server")
        answers = self.resolve(host, port)
        if not answers:
            raise OSError(f"{host} resolves to no address")
        for text in answers:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError as exc:
                raise AddressRefused(f"{host} resolves to {text!r}, not an address") from exc
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped  # judged (and shown) as the IPv4 it stands for
            why = self.refusal(address)
            if why is not None:
                raise AddressRefused(
                    f"{host} resolves to {address}, {why}: models are fetched from public "
                    "addresses only (MODEL_FETCH_ALLOWED_NETWORKS exempts a network)"
                )
        return answers
