"""Criminal prosecution thresholds (立案追诉标准), pure: which rule version applies, and is it met.

The table (`thresholds.yaml`, packaged beside this module) holds one row per version of a standard:
statute article, source document, `effective_from` / `effective_to`, confidence (V1 / V2 / U of the
domain facts) and, for amount offences, alternative conditions over a case's aggregated facts (money
in fen). Rules of different document families in force on the same day (e.g. a judicial interpretation
and a 立案追诉标准) are alternative standards: the case meets the threshold when any of them is met.

The rule is chosen by the date of the conduct: the version in force on that day. 从旧兼从轻 (Criminal Law
Art.12 — applying the old law when it is lighter) is left to the prosecutor; every assessment names the
version it used so that choice can be made. Art.149 (a 141–148 case with 销售金额 ≥ 5万 is convicted under
Art.140) is not applied here: assess ART_140 as well for such cases.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from typing import Any, Literal, cast

import yaml

Status = Literal["MET", "NOT_MET", "CONDUCT", "NEEDS_REVIEW", "NO_RULE"]
OffenceType = Literal["amount", "conduct", "danger", "result"]
Confidence = Literal["V1", "V2", "U"]

QUANTITIES = frozenset({
    "illegal_business_amount_fen", "illegal_gains_fen", "sales_amount_fen", "goods_value_fen", "copies", "works",
    "clicks", "members", "trademark_kinds", "labels", "loss_fen",
})  # fmt: skip
ARTICLES = (
    "140", "141", "142", "142-1", "143", "144", "145", "146", "147", "148",
    "213", "214", "215", "216", "217", "218", "219", "219-1",
)  # fmt: skip
VIOLATIONS = frozenset({"ART_" + a.replace("-", "_") for a in ARTICLES} | {"OTHER"})
_OFFENCE_TYPES = ("amount", "conduct", "danger", "result")
_RANK = {"V1": 0, "V2": 1, "U": 2}
_REQUIRED = ("id", "article", "name_zh", "offence_type", "family", "source", "effective_from", "confidence")
_OPTIONAL = ("effective_to", "any_of", "trigger", "not_evaluated", "note", "concurrent_with")


class ThresholdTableError(ValueError):
    """The threshold table is malformed; the message names the rule and the field."""


@dataclass(frozen=True)
class Term:
    """`sum(weight × quantity) >= value`; a single quantity has weight 1. Unreported quantities count as 0,
    but a term none of whose quantities is reported is not met."""

    weights: tuple[tuple[str, int], ...]
    value: int
    op: str = ">="

    def total(self, facts: Mapping[str, int | None]) -> int | None:
        present = [w * v for q, w in self.weights if (v := facts.get(q)) is not None]
        return sum(present) if present else None

    def label(self) -> str:
        return " + ".join(q if w == 1 else f"{w}×{q}" for q, w in self.weights)


@dataclass(frozen=True)
class Condition:
    """All terms must hold (e.g. two or more trademark kinds AND a lower amount)."""

    all_of: tuple[Term, ...]

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q for t in self.all_of for q, _ in t.weights))

    def met(self, facts: Mapping[str, int | None]) -> bool:
        return all((total := t.total(facts)) is not None and total >= t.value for t in self.all_of)

    def explain(self, facts: Mapping[str, int | None]) -> str:
        return " and ".join(f"{t.label()} {t.total(facts) or 0:,} ≥ {t.value:,}" for t in self.all_of)


@dataclass(frozen=True)
class Rule:
    id: str
    article: str  # statute number: "214", "142-1"
    name_zh: str
    offence_type: OffenceType
    family: str
    source: str
    effective_from: date
    effective_to: date | None
    confidence: Confidence
    any_of: tuple[Condition, ...] = ()
    trigger: str | None = None
    not_evaluated: tuple[str, ...] = ()
    note: str | None = None
    concurrent_with: tuple[str, ...] = ()

    @property
    def violation(self) -> str:
        return "ART_" + self.article.replace("-", "_")

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def cite(self) -> str:
        return f"{self.source}, from {self.effective_from.isoformat()}" + (", U" if self.confidence == "U" else "")


@dataclass(frozen=True)
class ThresholdTable:
    rules: tuple[Rule, ...]
    version: str = ""

    def rules_for(self, article: str, conduct_date: date) -> tuple[Rule, ...]:
        """Rules for an article ("ART_142_1" or "142-1") in force on the date of conduct, in table order."""
        key = article.removeprefix("ART_").replace("_", "-")
        return tuple(r for r in self.rules if r.article == key and r.in_force(conduct_date))


@dataclass(frozen=True)
class Assessment:
    article: str
    status: Status
    rule_id: str | None
    source: str | None
    effective_from: date | None
    confidence: str | None
    uncertain: bool
    met_by: tuple[str, ...]
    explanation: str


# -- the table -------------------------------------------------------------------------------------------------


def _fail(where: str, message: str) -> ThresholdTableError:
    return ThresholdTableError(f"thresholds table: {where}: {message}")


def _date(raw: Any, where: str) -> date:
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise _fail(where, f"not a date: {raw!r}") from None


def _texts(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise _fail(where, "must be a list of non-empty strings")
    return tuple(raw)


def _term(raw: Any, where: str) -> Term:
    if not isinstance(raw, Mapping) or set(raw) - {"quantity", "sum_of", "op", "value"}:
        raise _fail(where, f"a term is {{quantity | sum_of, op, value}}, got {raw!r}")
    if raw.get("op") != ">=":
        raise _fail(where, f"op must be '>=', got {raw.get('op')!r}")
    value = raw.get("value")
    if type(value) is not int or value <= 0:
        raise _fail(where, f"value must be a positive integer, got {value!r}")
    if ("quantity" in raw) == ("sum_of" in raw):
        raise _fail(where, "a term has exactly one of quantity / sum_of")
    weights = raw["sum_of"] if "sum_of" in raw else {raw["quantity"]: 1}
    if not isinstance(weights, Mapping) or not weights:
        raise _fail(where, "sum_of must map quantities to weights")
    for quantity, weight in weights.items():
        if quantity not in QUANTITIES:
            raise _fail(where, f"unknown quantity {quantity!r}")
        if type(weight) is not int or weight <= 0:
            raise _fail(where, f"weight of {quantity} must be a positive integer")
    return Term(tuple(weights.items()), value)


def _rule(raw: Any, families: Mapping[str, Any], documents: Mapping[str, Any], index: int) -> Rule:
    where = f"rule #{index} {raw.get('id', '?') if isinstance(raw, Mapping) else ''}".rstrip()
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping")
    missing = [k for k in _REQUIRED if raw.get(k) in (None, "")]
    if missing:
        raise _fail(where, f"missing {', '.join(missing)}")
    unknown = set(raw) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown)}")
    article, rule_id = str(raw["article"]), str(raw["id"])
    if article not in ARTICLES:
        raise _fail(where, f"article {article!r} is not one of {', '.join(ARTICLES)}")
    if not rule_id.startswith("ART_" + article.replace("-", "_") + "/"):
        raise _fail(where, f"id must start with ART_{article.replace('-', '_')}/")
    if raw["offence_type"] not in _OFFENCE_TYPES:
        raise _fail(where, f"offence_type must be one of {', '.join(_OFFENCE_TYPES)}")
    if raw["confidence"] not in _RANK:
        raise _fail(where, "confidence must be V1, V2 or U")
    if raw["family"] not in families:
        raise _fail(where, f"unknown family {raw['family']!r}")
    for part in str(raw["source"]).split(";"):
        if part.split()[:1] == [] or part.split()[0] not in documents:
            raise _fail(where, f"source {part.strip()!r} does not start with a document id")
    start = _date(raw["effective_from"], f"{where} effective_from")
    end = None if raw.get("effective_to") is None else _date(raw["effective_to"], f"{where} effective_to")
    if end is not None and end < start:
        raise _fail(where, "effective_to is before effective_from")
    conditions = raw.get("any_of") or []
    if not isinstance(conditions, list):
        raise _fail(where, "any_of must be a list")
    any_of = []
    for n, cond in enumerate(conditions):
        terms = cond.get("all_of") if isinstance(cond, Mapping) and set(cond) == {"all_of"} else None
        if not isinstance(terms, list) or not terms:
            raise _fail(f"{where} any_of[{n}]", "a condition is {all_of: [terms]} with at least one term")
        any_of.append(Condition(tuple(_term(t, f"{where} any_of[{n}]") for t in terms)))
    rule = Rule(
        id=rule_id, article=article, name_zh=str(raw["name_zh"]), offence_type=cast(OffenceType, raw["offence_type"]),
        family=str(raw["family"]), source=str(raw["source"]), effective_from=start, effective_to=end,
        confidence=cast(Confidence, raw["confidence"]), any_of=tuple(any_of),
        trigger=None if raw.get("trigger") is None else str(raw["trigger"]),
        not_evaluated=_texts(raw.get("not_evaluated"), f"{where} not_evaluated"),
        note=None if raw.get("note") is None else str(raw["note"]),
        concurrent_with=_texts(raw.get("concurrent_with"), f"{where} concurrent_with"),
    )  # fmt: skip
    if rule.offence_type == "conduct" and rule.any_of:
        raise _fail(where, "a conduct offence has no amount conditions")
    if rule.offence_type != "amount" and not rule.trigger:
        raise _fail(where, f"a {rule.offence_type} offence needs its statutory trigger")
    if rule.offence_type == "amount" and not rule.any_of and not rule.not_evaluated:
        raise _fail(where, "an amount rule without conditions must say why in not_evaluated")
    return rule


def parse_table(data: Any) -> ThresholdTable:
    """Validate the loaded YAML and build the table; raises `ThresholdTableError`."""
    if not isinstance(data, Mapping):
        raise _fail("top level", "must be a mapping")
    version, families, documents, raw_rules = (data.get(k) for k in ("version", "families", "documents", "rules"))
    if not isinstance(version, str) or not version:
        raise _fail("top level", "version must be a non-empty string")
    if not isinstance(families, Mapping) or not isinstance(documents, Mapping):
        raise _fail("top level", "families and documents must be mappings")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _fail("top level", "rules must be a non-empty list")
    rules = tuple(_rule(raw, families, documents, n) for n, raw in enumerate(raw_rules))
    ids = [r.id for r in rules]
    for rule in rules:
        if ids.count(rule.id) > 1:
            raise _fail(rule.id, "duplicate id")
        for other in rule.concurrent_with:
            if other not in ids:
                raise _fail(rule.id, f"concurrent_with names unknown rule {other!r}")
    for n, a in enumerate(rules):
        for b in rules[n + 1 :]:
            same = a.article == b.article and a.family == b.family
            a_end, b_end = a.effective_to or date.max, b.effective_to or date.max
            overlap = a.effective_from <= b_end and b.effective_from <= a_end
            if same and overlap and b.id not in a.concurrent_with and a.id not in b.concurrent_with:
                raise _fail(b.id, f"effective period overlaps {a.id} (same article and family {a.family})")
    return ThresholdTable(rules=rules, version=version)


@functools.cache
def load_table() -> ThresholdTable:
    """The packaged table, validated once."""
    text = files("leadbus.processors.core").joinpath("thresholds.yaml").read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ThresholdTableError(f"thresholds table: not valid YAML: {exc}") from exc
    return parse_table(data)


# -- assessment --------------------------------------------------------------------------------------------------


def _assessment(violation: str, rule: Rule, status: Status, uncertain: bool, met_by: tuple[str, ...],
                what: str, tail: str = "") -> Assessment:  # fmt: skip
    return Assessment(article=violation, status=status, rule_id=rule.id, source=rule.source,
                      effective_from=rule.effective_from, confidence=rule.confidence, uncertain=uncertain,
                      met_by=met_by, explanation=f"{what} ({rule.cite()}){tail}")  # fmt: skip


def assess(violation: str, facts: Mapping[str, int | None], conduct_date: date,
           table: ThresholdTable | None = None) -> Assessment:  # fmt: skip
    """Assess one violation (the bus's enum name: ART_140 … ART_219_1, OTHER) against a case's aggregated facts.

    The rules used are those in force on `conduct_date`, the date of the conduct — not today. 从旧兼从轻
    (choosing the lighter old law, Criminal Law Art.12) is left to the prosecutor: the assessment names the
    version it used. Of several rules met, the best-sourced one (V1 before V2 before U, then the newest) is named.

    - CONDUCT: a conduct offence (141 假药 since 2011-05-01, 144, 219-1): no amount needed.
    - MET / NOT_MET: an amount condition of a rule in force is / is not met.
    - NEEDS_REVIEW: danger or result offences (142, 142-1, 143, 145, 146, 148) cannot be decided from amounts,
      nor can amount offences whose figures were not extracted (the I2025 rows): a person decides.
    - NO_RULE: OTHER, or no rule in force on that date.
    `uncertain` is True when the rule named is U, when no figure could be applied (NO_RULE, NEEDS_REVIEW, no
    quantity reported), or, for NOT_MET, when a rule in force is U or has triggers the bus cannot evaluate.
    """
    if violation not in VIOLATIONS:
        raise ValueError(f"unknown violation {violation!r}")
    rules = (table or load_table()).rules_for(violation, conduct_date) if violation != "OTHER" else ()
    if not rules:
        return Assessment(violation, "NO_RULE", None, None, None, None, True, (),
                          f"no threshold rule for {violation} on {conduct_date.isoformat()}")  # fmt: skip
    ranked = sorted(rules, key=lambda r: (_RANK[r.confidence], -r.effective_from.toordinal(), r.id))
    for rule in ranked:
        if rule.offence_type == "conduct":
            return _assessment(violation, rule, "CONDUCT", rule.confidence == "U", (),
                               f"conduct offence, no amount threshold: {rule.trigger}")  # fmt: skip
    for rule in ranked:
        for condition in rule.any_of:
            if condition.met(facts):
                return _assessment(violation, rule, "MET", rule.confidence == "U", condition.quantities,
                                   condition.explain(facts))  # fmt: skip
    for rule in ranked:
        if rule.offence_type != "amount":
            review = f"; no figure met, review: {'; '.join(rule.not_evaluated)}" if rule.any_of else ""
            return _assessment(
                violation,
                rule,
                "NEEDS_REVIEW",
                True,
                (),
                f"{rule.offence_type} offence ({rule.trigger}), not decidable from amounts",
                review,
            )
        if not rule.any_of:
            return _assessment(violation, rule, "NEEDS_REVIEW", True, (), "; ".join(rule.not_evaluated))
    rule = ranked[0]
    used = sorted({q for r in rules for c in r.any_of for q in c.quantities if facts.get(q) is not None})
    reported = ", ".join(f"{q} {facts.get(q) or 0:,}" for q in used) or "no threshold quantity reported"
    others = [r.source for r in ranked[1:]]
    gaps = [gap for r in ranked for gap in r.not_evaluated]
    uncertain = not used or any(r.confidence == "U" or r.not_evaluated for r in rules)
    tail = (f"; also checked {' | '.join(others)}" if others else "") + (
        f"; not evaluated: {'; '.join(gaps)}" if gaps else ""
    )
    return _assessment(violation, rule, "NOT_MET", uncertain, (), f"no condition met: {reported}", tail)


def assess_case(violations: Iterable[str], facts: Mapping[str, int | None], conduct_date: date,
                table: ThresholdTable | None = None) -> list[Assessment]:  # fmt: skip
    """One assessment per distinct violation of the case, in first-seen order."""
    return [assess(v, facts, conduct_date, table) for v in dict.fromkeys(violations)]


def should_transfer(assessments: Iterable[Assessment]) -> bool:
    """Hand the case over to public security when any violation meets a threshold or is a conduct offence."""
    return any(a.status in ("MET", "CONDUCT") for a in assessments)
