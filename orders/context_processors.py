"""Template context for every page: how many orders need attention, for the nav."""

from django.utils.functional import SimpleLazyObject

from orders.reconcile import attention_count


def reconcile_nav(request):
    """`reconcile_open`: orders that need a person now, for users who can act on them (counted only if shown)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("orders.upload_note"):
        return {}
    return {"reconcile_open": SimpleLazyObject(attention_count)}
