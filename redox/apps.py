from django.apps import AppConfig


class RedoxConfig(AppConfig):
    """The Redox protocol: knows nothing of HCOINT's models (imports point hcoint → orders → redox)."""

    name = "redox"
    verbose_name = "Redox"
