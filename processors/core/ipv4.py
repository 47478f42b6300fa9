"""IPv4 addresses in their canonical dotted form, read without `ipaddress` objects (issue #16: an address intake has
never seen cost ~10 µs of parsing, `is_global` and a network built from text for its /24).

Only what `ipaddress` itself answers: the dotted form it prints, and `is_global` from its own special networks. When
its constants are not of the form read here (another Python's), `is_global` asks `ipaddress` (a unit test holds both
equal on simulated addresses, every special network's edges and a sweep)."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# What `str(IPv4Address(...))` prints: four decimal octets 0-255 without leading zeros (ASCII digits only).
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED: Final = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _special() -> tuple[tuple[int, int], ...] | None:
    """(network, mask) of the networks that make an address not global, as `IPv4Address.is_global` reads them:
    100.64.0.0/10 (shared address space) and the private networks; None when this Python's are other ones."""
    constants = getattr(ipaddress, "_IPv4Constants", None)
    public = getattr(constants, "_public_network", None)
    private = getattr(constants, "_private_networks", None)
    if (not isinstance(public, ipaddress.IPv4Network) or not isinstance(private, list)
            or hasattr(constants, "_private_networks_exceptions")):
        return None
    networks = [public, *private]
    if not all(isinstance(net, ipaddress.IPv4Network) for net in networks):
        return None
    return tuple((int(net.network_address), int(net.netmask)) for net in networks)


_SPECIAL: Final = _special()


def dotted(text: str) -> tuple[int, int, int, int] | None:
    """The octets of an address written as `ipaddress` prints it; None for any other text."""
    match = _DOTTED.fullmatch(text)
    if match is None:
        return None
    a, b, c, d = match.groups()
    return int(a), int(b), int(c), int(d)


def is_global(octets: tuple[int, int, int, int]) -> bool:
    """`IPv4Address(...).is_global` of the address."""
    a, b, c, d = octets
    value = a << 24 | b << 16 | c << 8 | d
    if _SPECIAL is None:
        return ipaddress.IPv4Address(value).is_global
    return all(value & mask != network for network, mask in _SPECIAL)
