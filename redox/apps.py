from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed


class RedoxConfig(AppConfig):
    """The Redox protocol: knows nothing of HCOINT's models (imports point hcoint → orders → redox)."""

    name = "redox"
    verbose_name = "Redox"

    def ready(self) -> None:
        from redox import auth, client

        # A half-complete or unreadable Redox configuration stops the process here, at
        # startup, naming what is missing. No Redox settings at all is allowed (development,
        # tests); `manage.py check --deploy` flags that case for production.
        auth.load_auth()
        auth.load_platform_auth()
        setting_changed.connect(client.reset_client, dispatch_uid="redox.reset_client")
        checks.register(check_redox_credentials, checks.Tags.security, deploy=True)


def check_redox_credentials(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from redox import auth

    if auth.load_auth() is None:
        return [
            checks.Error(
                "No Redox credentials: deliveries cannot be sent.",
                hint="Set REDOX_CLIENT_ID, REDOX_KEY_ID and REDOX_PRIVATE_KEY (or REDOX_PRIVATE_KEY_FILE), "
                "or REDOX_API_KEY and REDOX_API_SECRET.",
                id="redox.E001",
            )
        ]
    return []
