"""Analysts' link decisions made on a regional dashboard (issue #19): confirm or reject a suggested link, split a case.

    desk = LinkDesk.open("SAMR", "31", kafka, key=Path("samr31.key"), state_dir=Path("var/dashboard/yrd"))
    create_app(bootstrap, "yrd", sign_in=sign_in, desk=desk)      # POST /api/suggestions/{id}/decision, …/split

The dashboard's server holds the signing key of one agency office (publisher id ``AGENCY.PROVINCE``, registered
with ``leadbus keys register``) exactly as that agency's gateway does, and publishes each decision a signed-in
supervisor makes as a signed `LinkDecision` on the agency's intake topic, naming the supervisor's account
(``analyst.user``) in the role SUPERVISOR. Intake then checks it like every analyst's decision (signature, role,
reason) and linking carries it out; the dashboard decides nothing itself. Who may use the desk: a supervisor of the
dashboard's region (the sign-in checks the region) who works for the desk's agency (``agencies`` of the users file
lists it, or ``*``) — a decision signed with an agency's key speaks for that agency.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from leadbus.clients import KafkaSettings
from leadbus.models import Analyst, LinkDecision
from leadbus.producers.publisher import Publisher
from leadbus.producers.signing import SigningSealer

Action = Literal["CONFIRM", "REJECT", "SPLIT"]


class DeskRefusal(Exception):
    """A decision the desk will not publish: (HTTP status, error code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _refusal(exc: ValidationError) -> DeskRefusal:
    """The model's first objection, with its reason code (REASON_MISSING, LEAD_ID_FORMAT, …) when it has one."""
    first = exc.errors()[0] if exc.errors() else {"type": "", "msg": str(exc)}
    code = str(first["type"])
    if not code.isupper():  # pydantic's own (a wrong type): the field says what
        code = "REASON_MISSING" if first.get("loc") == ("reason",) else "INVALID_DECISION"
    return DeskRefusal(400, code, str(first["msg"])[:300])


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LinkDesk:
    """Publishes supervisors' link decisions, signed with the agency office's key, and waits for the broker."""

    def __init__(self, agency: str, province: str, publisher: Publisher, *, timeout: float = 15.0,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.agency, self.province = agency, province
        self.publisher, self.timeout, self.clock = publisher, timeout, clock
        self._lock = threading.Lock()  # one decision at a time: the signing sequence is one lane

    @classmethod
    def open(cls, agency: str, province: str, kafka: str | KafkaSettings, *, key: Path, state_dir: Path,
             timeout: float = 15.0) -> LinkDesk:
        """The desk of office ``agency.province``: its Ed25519 key file, its signing sequence kept in ``state_dir``."""
        publisher_id = f"{agency}.{province}"
        state_dir.mkdir(parents=True, exist_ok=True)
        sealer = SigningSealer.from_file(publisher_id, key, state_dir / f"{publisher_id}.links.seq")
        return cls(agency, province, Publisher(agency, province, bootstrap_servers=kafka, sealer=sealer),
                   timeout=timeout)

    def refusal(self, username: str, role: str, agencies: Sequence[str]) -> DeskRefusal | None:
        """Why this signed-in user may not decide links here, or None."""
        if role != "supervisor":
            return DeskRefusal(403, "FORBIDDEN", "link decisions: supervisors only")
        if "*" not in agencies and self.agency not in agencies:
            return DeskRefusal(403, "FORBIDDEN", f"{username} does not work for {self.agency}, whose key signs "
                                                 "this dashboard's decisions")
        return None

    def build(self, username: str, action: Action, case_a: str, *, case_b: str | None = None,
              lead_ids: Sequence[str] = (), suggestion_id: str | None = None, reason: object) -> LinkDecision:
        """The decision as the supervisor makes it, checked by the contract's own model (`LinkDecision`: reason,
        shape, ids), exactly as intake will check it; DeskRefusal (400, the model's reason code) when it does not
        validate."""
        try:
            return LinkDecision.model_validate({
                "decision_id": str(uuid.uuid4()), "action": action, "case_a": case_a, "case_b": case_b,
                "lead_ids": list(lead_ids), "suggestion_id": suggestion_id, "reason": reason,
                "analyst": Analyst(agency=self.agency, province=self.province, user=username, role="SUPERVISOR"),
                "decided_at": self.clock(),
            }, context={"now": self.clock()})
        except ValidationError as exc:
            raise _refusal(exc) from None

    def publish(self, decision: LinkDecision) -> LinkDecision:
        """Sign, publish and confirm one decision; DeskRefusal 503 when the broker did not confirm it in time."""
        with self._lock:
            try:
                pending = self.publisher.publish_link_decision(decision)
                self.publisher.wait([pending], timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001 — any publishing failure is the broker's: retry later
                raise DeskRefusal(503, "NOT_PUBLISHED", f"the bus did not confirm the decision: {exc}"[:300]) from None
        return decision

    def decide(self, username: str, action: Action, case_a: str, *, case_b: str | None = None,
               lead_ids: Sequence[str] = (), suggestion_id: str | None = None, reason: object) -> LinkDecision:
        """`build` and `publish`."""
        return self.publish(self.build(username, action, case_a, case_b=case_b, lead_ids=lead_ids,
                                       suggestion_id=suggestion_id, reason=reason))

    def close(self) -> None:
        self.publisher.close()
        close = getattr(self.publisher._sealer, "close", None)  # the sequence file records what was used
        if close is not None:
            close()
