"""CaseLead v3 contacts (waybill senders, the shop operator), normalised: phones in one form, pure and cheap.

Names and addresses are evidence and stay as written (`normalize` module docstring); a phone takes its
canonical form (`leadbus.contact_phones`): ``+8613812345678`` when full, ``138****5678`` when masked. Leads
without contacts never reach this module (intake's hot path skips it).
"""

from __future__ import annotations

from leadbus.contact_phones import canonical_contact_phone
from leadbus.models import CaseLead, Contact


def _contact(contact: Contact) -> Contact:
    if contact.phone is None:
        return contact
    phone = canonical_contact_phone(contact.phone) or contact.phone
    return contact if phone == contact.phone else contact.model_copy(update={"phone": phone})


def with_canonical_contacts(lead: CaseLead) -> CaseLead:
    """``lead`` with its senders' and operator's phones canonical (the same object when they already are)."""
    senders = [_contact(s) for s in lead.senders]
    operator = _contact(lead.operator) if lead.operator is not None else None
    if operator is lead.operator and all(a is b for a, b in zip(senders, lead.senders, strict=True)):
        return lead
    return lead.model_copy(update={"senders": senders, "operator": operator})
