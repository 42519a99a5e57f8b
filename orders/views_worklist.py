"""The home page: the worklist for those who upload notes, the order list for everyone else.

Uploaders (and admins) come to HCOINT every few weeks to clear a backlog, so their first
page is the work itself (orders/worklist.py). Viewers cannot act on it, so `/` takes them to
the searchable order list (`/orders/`), as it always showed them. A search bookmarked when
the list lived at `/` (`/?q=…`) goes on to the list with its query, for everyone.
"""

from django.contrib.auth.decorators import permission_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from orders.worklist import worklist


@require_GET
@permission_required("orders.view_order", raise_exception=True)
def home(request):
    if request.GET:
        # The query is the user's own search, already in their browser's address bar; the
        # redirect carries it no further (query strings are never logged or traced).
        return redirect(f"{reverse('order_list')}?{request.GET.urlencode()}")
    if not request.user.has_perm("orders.upload_note"):
        return redirect("order_list")
    content = worklist()
    # The nav's number is the worklist's two totals: shown from the page's own counts, the
    # context processor's query never runs.
    context = {"worklist": content, "reconcile_open": content.counts.attention}
    return render(request, "orders/worklist.html", context)
