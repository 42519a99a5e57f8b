"""Template context for every page: how many orders need attention, for the nav."""

from django.utils.functional import SimpleLazyObject

from orders.reconcile import attention_count


def reconcile_nav(request):
    """`reconcile_open`: orders awaiting a note or needing a person now, for users who can act
    on them (counted only if shown). A page that computes these counts already (the worklist,
    the order list, the reconcile page) puts its own `reconcile_open` in its context, which
    overrides this one, so the query here never runs there."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("orders.upload_note"):
        return {}
    return {"reconcile_open": SimpleLazyObject(attention_count)}
