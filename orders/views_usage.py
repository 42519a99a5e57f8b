"""The Usage page: weekly figures per partner, charted then tabled, for admins and uploaders (orders.view_usage)."""

from django import forms
from django.contrib.auth.decorators import permission_required
from django.shortcuts import render

from orders.usage import DEFAULT_WEEKS, usage_figures
from orders.usage_chart import usage_charts
from orders.usage_weeks import MAX_WEEKS


class UsageForm(forms.Form):
    weeks = forms.IntegerField(label="Weeks", min_value=1, max_value=MAX_WEEKS, required=False)
    include_test = forms.BooleanField(label="Include test orders", required=False)


@permission_required("orders.view_usage", raise_exception=True)
def usage(request):
    form = UsageForm(request.GET)
    weeks, include_test = DEFAULT_WEEKS, False
    if form.is_valid():
        weeks = form.cleaned_data["weeks"] or DEFAULT_WEEKS
        include_test = form.cleaned_data["include_test"]
    figures = usage_figures(weeks=weeks, include_test=include_test)
    return render(
        request,
        "orders/usage.html",
        {"form": form, "usage": figures, "weeks": weeks, "charts": usage_charts(figures)},
    )
