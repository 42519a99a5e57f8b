import hmac
import json

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

TOKEN = "bench-verification-token-0123456789"  # noqa: S105 (bench/seed.py's partner token)


@csrf_exempt
def webhook(request):
    """Check the token, parse the JSON, store the body: the least a webhook can do."""
    if not hmac.compare_digest(request.headers.get("verification-token", ""), TOKEN):
        return JsonResponse({"error": "forbidden"}, status=403)
    body = request.body
    message = json.loads(body)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO anchor_message (log_id, body, received_at) VALUES (%s, %s, now())",
            [message["Meta"]["Logs"][0]["ID"], body],
        )
    return JsonResponse({"status": "ok"})


urlpatterns = [path("redox/webhook/", webhook), path("healthcheck", lambda request: JsonResponse({"ok": True}))]
