"""Staff pages. Placeholder until the staff-pages issue lands."""

from django.http import HttpResponse


def order_list(request):
    return HttpResponse("HCOINT", content_type="text/plain")


def order_detail(request, pk):
    return HttpResponse(f"Order {pk}", content_type="text/plain")
