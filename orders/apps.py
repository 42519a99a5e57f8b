from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self):
        from orders import auth_audit
        from orders.roles import roles_sync_after_migrate

        auth_audit.connect()
        post_migrate.connect(roles_sync_after_migrate, sender=self, dispatch_uid="orders.roles_sync")
