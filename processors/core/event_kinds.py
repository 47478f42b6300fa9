"""Every kind of agency event intake forwards besides leads and handover decisions, by writer schema name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from leadbus.models import BlacklistDecision, LinkDecision
from leadbus.processors.core import operations
from leadbus.processors.core.agency_events import KINDS as _EVENTS
from leadbus.processors.core.agency_events import EventKind
from leadbus.topics import BLACKLIST_DECISIONS, LINK_DECISIONS

#: Who may decide links: analysts, and supervisors (who review suggestions on their region's dashboard).
LINK_ROLES = frozenset({"ANALYST", "SUPERVISOR"})


def _analyst_may_decide(decision: LinkDecision) -> tuple[str, str, str] | None:
    analyst = decision.analyst
    if analyst.role in LINK_ROLES:
        return None
    return ("WRONG_ROLE", f"{analyst.user} ({analyst.role}) is not an analyst: only analysts and supervisors "
                          "decide links", "analyst.role")


#: An agency's decision to list, decline or delist a proposed blacklist entry (issue #18), keyed by entry.
BLACKLIST_KIND = EventKind("cn.leadbus.BlacklistDecision", BlacklistDecision, BLACKLIST_DECISIONS, "actor",
                           lambda d: d.entry_id)
#: An analyst's confirm / reject / split of case links (issue #19): it merges or splits cases, so it must come
#: from an authenticated analyst — signed by the key of the analyst's agency and province, on that agency's own
#: intake topic, naming the account, in a role that decides links, saying why — and goes on to linking.
LINK_KIND = EventKind("cn.leadbus.LinkDecision", LinkDecision, LINK_DECISIONS, "analyst", lambda d: d.case_a,
                      signed_only=True, check=_analyst_may_decide)

KINDS: Mapping[str, EventKind] = MappingProxyType({
    **_EVENTS, operations.KIND.schema: operations.KIND, BLACKLIST_KIND.schema: BLACKLIST_KIND,
    LINK_KIND.schema: LINK_KIND,
})
