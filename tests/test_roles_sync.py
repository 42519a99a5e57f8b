"""The role groups stay complete: every model's permissions reach the admin role, and
`migrate` restores a role's permissions if someone changed them by hand."""

from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from orders.roles import UPLOADER, roles_sync


def codenames(group_name):
    return set(Group.objects.get(name=group_name).permissions.values_list("content_type__app_label", "codename"))


def test_the_admin_role_holds_every_permission_of_every_orders_model(db):
    every = set(
        Permission.objects.filter(content_type__app_label="orders").values_list("content_type__app_label", "codename")
    )
    assert ("orders", "view_redelivery") in every  # a model added after the roles migration
    assert every <= codenames("admin")


def test_the_uploader_role_holds_exactly_its_permissions(db):
    assert codenames("uploader") == set(UPLOADER)


def test_sync_restores_a_role_changed_by_hand(db):
    uploader = Group.objects.get(name="uploader")
    uploader.permissions.clear()
    Group.objects.filter(name="viewer").delete()

    roles_sync(global_apps)

    assert codenames("uploader") == set(UPLOADER)
    assert codenames("viewer") == {("orders", "view_order")}


def test_migrate_runs_the_sync(db):
    Group.objects.get(name="admin").permissions.clear()
    call_command("migrate", verbosity=0)
    assert ("orders", "change_partner") in codenames("admin")
