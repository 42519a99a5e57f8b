"""Carrying a note to Redox. Interface stub; the delivery issue fills it in."""


def delivery_enqueue(*, delivery):
    """Queue the background job that sends `delivery`. Call inside the transaction that created it."""
    raise NotImplementedError
