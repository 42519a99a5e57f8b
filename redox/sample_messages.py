"""Redox sample messages made new: what `manage.py redox_send_test_order` posts, and what the
benchmarks (bench/) post by the thousand. Plain values, no Django.
"""

import copy
import secrets
import uuid
from typing import Any


def fresh_copy(payload: dict[str, Any], *, new_order_id: bool) -> dict[str, Any]:
    """`payload` with a new Meta.Logs[0] ID/AttemptID (a new delivery, not a duplicate) and,
    when `new_order_id`, new order ids (a new order, not an update of the sample's)."""
    payload = copy.deepcopy(payload)
    meta = payload.setdefault("Meta", {})
    logs = meta.get("Logs") if isinstance(meta.get("Logs"), list) and meta.get("Logs") else [{}]
    logs[0] = {**logs[0], "ID": str(uuid.uuid4()), "AttemptID": str(uuid.uuid4())}
    meta["Logs"] = logs
    if new_order_id:
        for order in order_list(payload):
            # Epic order ids in the samples are nine digits.
            order["ID"] = str(100_000_000 + secrets.randbelow(900_000_000))
    return payload


def order_list(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The order objects of an Order message: its `Order`, or a GroupedOrders' `Orders`."""
    orders = [payload["Order"]] if isinstance(payload.get("Order"), dict) else payload.get("Orders") or []
    return [order for order in orders if isinstance(order, dict)]
