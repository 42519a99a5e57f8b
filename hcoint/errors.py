"""The 500 page, rendered so that it works when the database or the session store does not.

Django's default handler renders 500.html without a request; this one passes only the
request id, which support needs to find the matching log line. No context processors
run (they would query the user and the session), and the template loads nothing but
the stylesheet by its plain URL.
"""

from django.http import HttpResponseServerError
from django.template import loader

from hcoint.middleware import current_request_id


def server_error(request, template_name="500.html"):
    request_id = getattr(request, "request_id", "") or current_request_id()
    html = loader.get_template(template_name).render({"request_id": request_id})
    return HttpResponseServerError(html)
