"""Throttles: at most N failures per client address in a fixed time window, then 429.

Two are in use:

- `SIGN_IN_ADDRESS`: failed sign-ins from one address, whatever the user names
  (spraying). django-axes already locks an account from one address after
  AXES_FAILURE_LIMIT failures, but it compares every lockout parameter against that one
  limit, so a second, higher limit per address is counted here and plugged into axes by
  `SignInHandler` (AXES_HANDLER in settings). A locked address gets axes' lockout page
  (429) for the rest of the window, even with a right password.
- `WEBHOOK_BAD_TOKEN`: webhook requests with a wrong or missing verification token from
  one address (orders/webhook.py). Once an address is over the limit, its requests with
  a wrong token get 429 before their body is read. A request whose header token is right
  is never counted and never refused: Redox sends from a few shared egress addresses,
  and someone else's flood from one of them must not stop real deliveries (Redox pauses
  a partner's whole feed while we answer >= 400).

The counts live in one small table (`orders.ThrottleCount`, one row per throttle,
address and window), incremented by a single atomic upsert: gunicorn runs several
processes with several threads, in several containers, and a per-process count would
multiply the limit by their number. Windows are fixed (aligned to the epoch), so a
window's count starts again from zero when it ends; rows older than a day are deleted as
new windows begin, by each process at most once per throttle and window (the DELETE
scans the table: it must not run on every new address's first wrong token).

Each throttle logs its event once per window and address, when the limit is reached
(`auth.throttled`, `webhook.throttled`), never once per refused request: a flood must not
flood the logs. The event carries the throttle's scope, limit and window, not the address
or a user name (see hcoint/events.py); the address is in the table and, for sign-ins, in
the audit trail.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db import connection
from django.utils import timezone

from hcoint.client_ip import client_ip
from hcoint.events import log_event

logger = logging.getLogger(__name__)

KEEP = timedelta(days=1)

# Per throttle scope, the window this process last pruned old rows in. Shared by the
# process's threads without a lock: two threads pruning the same window is harmless.
_pruned_window: dict[str, datetime] = {}


def address_key(request):
    """The throttles' key: the client address by the one rule axes and the audit trail use."""
    return client_ip(request) or "unknown"


@dataclass(frozen=True)
class Throttle:
    scope: str
    event: str
    limit_setting: str
    window_setting: str

    @property
    def limit(self):
        return getattr(settings, self.limit_setting)

    @property
    def window_seconds(self):
        return getattr(settings, self.window_setting)

    def _window_start(self, now):
        epoch = int(now.timestamp())
        return datetime.fromtimestamp(epoch - epoch % self.window_seconds, tz=UTC)

    def failures(self, key):
        """Failures counted for `key` in the current window."""
        from orders.models import ThrottleCount

        window_start = self._window_start(timezone.now())
        rows = ThrottleCount.objects.filter(scope=self.scope, key=key, window_start=window_start)
        return rows.values_list("count", flat=True).first() or 0

    def is_over(self, key):
        """Whether `key` has reached the limit in this window (then refuse it)."""
        return self.failures(key) >= self.limit

    def retry_after(self):
        """Seconds until the current window ends, for a Retry-After header."""
        now = timezone.now()
        return max(1, int((self._window_start(now) - now).total_seconds()) + self.window_seconds)

    def record_failure(self, key):
        """Count one failure for `key`; True when `key` has now reached the limit."""
        from orders.models import ThrottleCount

        now = timezone.now()
        window_start = self._window_start(now)
        table = connection.ops.quote_name(ThrottleCount._meta.db_table)
        count_column = connection.ops.quote_name("count")
        # One statement, atomic on PostgreSQL (and SQLite): concurrent failures from
        # other processes each get their own number, so exactly one sees the limit.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (scope, key, window_start, {count_column}) VALUES (%s, %s, %s, 1) "  # noqa: S608 (names from the model, values are parameters)
                f"ON CONFLICT (scope, key, window_start) DO UPDATE SET {count_column} = {table}.{count_column} + 1 "
                f"RETURNING {count_column}",
                # The datetime as the ORM writes it (SQLite keeps a naive UTC string), so the
                # ORM's reads in failures() find the row.
                [self.scope, key, connection.ops.adapt_datetimefield_value(window_start)],
            )
            (count,) = cursor.fetchone()
        if _pruned_window.get(self.scope) != window_start:
            _pruned_window[self.scope] = window_start
            ThrottleCount.objects.filter(window_start__lt=now - KEEP).delete()
        if count == self.limit:
            log_event(
                logger,
                self.event,
                level=logging.WARNING,
                scope=self.scope,
                limit=self.limit,
                window_seconds=self.window_seconds,
            )
        return count >= self.limit


SIGN_IN_ADDRESS = Throttle(
    scope="sign_in_address",
    event="auth.throttled",
    limit_setting="SIGN_IN_ADDRESS_FAILURE_LIMIT",
    window_setting="SIGN_IN_ADDRESS_WINDOW_SECONDS",
)
WEBHOOK_BAD_TOKEN = Throttle(
    scope="webhook_bad_token",
    event="webhook.throttled",
    limit_setting="WEBHOOK_BAD_TOKEN_LIMIT",
    window_setting="WEBHOOK_BAD_TOKEN_WINDOW_SECONDS",
)


class SignInHandler(AxesDatabaseHandler):
    """django-axes' database handler, plus the per-address limit `SIGN_IN_ADDRESS`.

    Axes asks `is_locked` before checking a password (AxesBackend) and reports every
    failure to `user_login_failed`, including those it refused; setting
    `request.axes_locked_out` there is how axes itself marks a request for its lockout
    page (AxesMiddleware) and for the audit trail's `denied` outcome (orders/auth_audit.py).
    """

    def is_locked(self, request, credentials=None):
        return super().is_locked(request, credentials) or SIGN_IN_ADDRESS.is_over(address_key(request))

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and SIGN_IN_ADDRESS.record_failure(address_key(request)):
            request.axes_locked_out = True
            request.axes_credentials = credentials
