"""Publishing case leads onto the bus: the publisher SDK, the HTTP gateway and the simulator."""

from leadbus.producers.errors import FieldError, InvalidLead, PublishError
from leadbus.producers.publisher import (
    Delivery,
    EventSealer,
    PendingDelivery,
    Publisher,
    UnsealedEvents,
)

__all__ = [
    "Delivery",
    "EventSealer",
    "FieldError",
    "InvalidLead",
    "PendingDelivery",
    "PublishError",
    "Publisher",
    "UnsealedEvents",
]
