"""Errors of the delivery pipeline that tasks react to."""


class TransientDeliveryError(Exception):
    """The SMTP server is unreachable or answered 4xx: try the rest of the chunk again later."""
