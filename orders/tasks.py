"""Background jobs, run by `manage.py db_worker` (django-tasks with the django-tasks-db backend).

The jobs are thin: each one calls a workflow in `orders/delivery.py`, where the rules live.
A job carries only a delivery id; the Delivery row is the source of truth, so a job that
runs twice, late, or for a delivery that no longer needs it does nothing harmful.
"""

from django_tasks import task


@task()
def deliver(delivery_id):
    """Make one attempt to send the delivery to Redox, if it is still due."""
    from orders.delivery import delivery_attempt

    delivery = delivery_attempt(delivery_id=delivery_id)
    return delivery.status if delivery is not None else None
