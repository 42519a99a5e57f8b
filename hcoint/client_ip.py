"""Which address a request came from: one rule for sign-in lockouts and the audit trail.

Each proxy in front of the app (on Aptible, the load balancer) appends the address it
received the request from to X-Forwarded-For, so behind PROXY_COUNT such proxies the
client is the PROXY_COUNT-th entry from the right. Everything to its left was written by
the client and may be forged. With PROXY_COUNT = 0 (DEBUG: nothing in front) the header
is the client's own text and is ignored: REMOTE_ADDR is the client.

django-axes calls `client_ip` through AXES_CLIENT_IP_CALLABLE, and `orders.audit` asks
axes (`axes.helpers.get_client_ip_address`), so a lockout and the audit record always
name the same address. https://django-axes.readthedocs.io/en/latest/4_configuration.html
"""

import ipaddress

from django.conf import settings


def client_ip(request):
    """The client's address as a normalised string, or None if the request carries none."""
    proxies = settings.PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        # Fewer entries than proxies: the request did not come through all of them, so
        # no entry is known to be ours; the peer's address is the one fact we have.
        if len(hops) >= proxies:
            address = _address(hops[-proxies])
            if address:
                return address
    return _address(request.META.get("REMOTE_ADDR", ""))


def _address(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
