"""Criminal prosecution thresholds (立案追诉标准), pure: which rule applies to a case, and is it met.

The public entry point is :func:`assess` (one article) and :func:`assess_case` (every article of a case);
:func:`should_transfer` says whether the assessments oblige the agency to hand the case over (Decree 310).

    assess("ART_218", {"illegal_gains_fen": 6_000_000}, date(2024, 6, 1))      # 2024 conduct: I2004 10万 → NOT_MET
    assess("ART_218", {"illegal_gains_fen": 6_000_000}, date(2025, 6, 1))      # I2025 5万 → MET
    assess("ART_219", {"loss_fen": 12_000_000}, date(2025, 6, 1),
           prior_penalties=[PriorPenalty(date(2024, 1, 5), "ART_219")])        # 2-year repeat offender, 10万 → MET

Inputs: the article (the bus's enum name ART_140 … ART_219_1, OTHER, or the statute number "219-1"); the case's
facts (money in fen, counts; the names of `QUANTITIES`, plus optionally `labels_made_by` "SELF"/"OTHERS",
`mark_use` "GOODS"/"SERVICES", `rights_holder_bankrupt` true/false); the **date of the conduct** (never the report
date: Criminal Law Art.12, TIME2001); optionally the date the case is handled (default: today's law, i.e. after
every rule of the table took effect) and the suspect's prior penalties.

The table (`thresholds.yaml`, packaged beside this module) holds one row per version of a standard: statute
article, source document, `effective_from` / `effective_to`, confidence (V1 / V2 / U) and, for amount offences,
alternative conditions over the facts. Rules of different document families in force on the same day (a judicial
interpretation and a 立案追诉标准) are alternative standards: the case meets the threshold when any of them is met.

Which rules apply (temporal effect):

- the rules in force on the date of the conduct (Criminal Law Art.12; TIME2001 ¶1, ¶3);
- plus, for a case handled on or after a later interpretation took effect, that interpretation's rows marked
  `applies_back_to` for conduct since that date, where no interpretation of the statute's text existed at the time
  of the conduct (TIME2001 ¶2: 214 and 218 其他严重情节 and 219 情节严重 after CLA11, service marks under 213);
- and a threshold met under the rules of the time is not met when the law in force when the case is handled
  clearly says it is not (the lighter later law: CL Art.12 从旧兼从轻, TIME2001 ¶3).

Statuses: MET / NOT_MET (an amount condition is / is not met), CONDUCT (a conduct offence: no amount needed),
NEEDS_REVIEW (a danger or result offence, or the facts fall where a figure was not found — e.g. the 2025 label
figures, a repeat offender's lower tier under 213/214/216/217), NO_RULE (OTHER, or no offence on that date).
`uncertain` is True exactly when the answer rests on something not confirmed: a rule marked U was needed for MET,
a figure was not found (NEEDS_REVIEW), no threshold quantity was reported, or a trigger the bus cannot evaluate
remains. 以上 is inclusive (>=, Criminal Law Art.99).

Art.149 (a 141–148 case with 销售金额 ≥ 5万 is convicted under Art.140) is not applied here: assess ART_140 as well.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources import files
from typing import Any, Literal, cast

import yaml

Status = Literal["MET", "NOT_MET", "CONDUCT", "NEEDS_REVIEW", "NO_RULE"]
OffenceType = Literal["amount", "conduct", "danger", "result"]
Confidence = Literal["V1", "V2", "U"]
Marks = Literal["goods", "services", "any"]

FACT_QUANTITIES = (
    "illegal_business_amount_fen", "illegal_gains_fen", "sales_amount_fen", "goods_value_fen", "copies", "works",
    "clicks", "members", "trademark_kinds", "labels", "loss_fen",
    # CaseLead v2
    "labels_sold", "labels_held", "copies_held", "patents", "rights_holder_bankrupt",
)  # fmt: skip
# Circumstances derived by the evaluator (or given directly in the facts as 0 / 1):
#   repeat_offender   a prior criminal or administrative penalty for the same kind of conduct within two years
#                     before the conduct (I2025: 二年内…受过刑事处罚或者行政处罚后再次实施)
#   labels_of_others  the labels were made by others and only sold / held for sale (O2011 Art.9)
CIRCUMSTANCES = ("repeat_offender", "labels_of_others")
QUANTITIES = frozenset(FACT_QUANTITIES + CIRCUMSTANCES)
ARTICLES = (
    "140", "141", "142", "142-1", "143", "144", "145", "146", "147", "148",
    "213", "214", "215", "216", "217", "218", "219", "219-1",
)  # fmt: skip
VIOLATIONS = frozenset({"ART_" + a.replace("-", "_") for a in ARTICLES} | {"OTHER"})
IP_ARTICLES = frozenset({"213", "214", "215", "216", "217", "218", "219", "219-1"})
# Prior penalties that make a repeat offender, per article. 218: 因实施刑法第二百一十七条、第二百一十八条规定的行为
# (I2025, xiaoyaolawyer quote); 219: trade-secret violations (SPC English site). For 213–216 the I2025 recidivist
# text was not found: the bus reads "the same kind of conduct" as the trademark / patent group.
REPEAT_GROUPS: dict[str, frozenset[str]] = {
    "213": frozenset({"213", "214", "215"}), "214": frozenset({"213", "214", "215"}),
    "215": frozenset({"213", "214", "215"}), "216": frozenset({"216"}),
    "217": frozenset({"217", "218"}), "218": frozenset({"217", "218"}),
    "219": frozenset({"219", "219-1"}), "219-1": frozenset({"219", "219-1"}),
}  # fmt: skip
SERVICE_MARKS_FROM = date(2021, 3, 1)  # CLA11: 假冒注册商标罪 extends to service marks
_OFFENCE_TYPES = ("amount", "conduct", "danger", "result")
_MARKS = ("goods", "services", "any")
_RANK = {"V1": 0, "V2": 1, "U": 2}
_REQUIRED = ("id", "article", "name_zh", "offence_type", "family", "source", "effective_from", "confidence")
_OPTIONAL = ("effective_to", "any_of", "trigger", "not_evaluated", "note", "concurrent_with", "applies_back_to",
             "marks", "review_if", "review_note")


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
    applies_back_to: date | None = None  # TIME2001 ¶2: also for conduct from this date, once in force
    marks: Marks = "any"  # 213: goods marks only (before CLA11), or also service marks
    review_if: tuple[Condition, ...] = ()  # facts a figure that was not found may decide: a person reviews
    review_note: str | None = None

    @property
    def violation(self) -> str:
        return "ART_" + self.article.replace("-", "_")

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def applies_back(self, conduct: date, handled: date) -> bool:
        """TIME2001 ¶2: conduct before this rule, when no interpretation existed then, handled after it."""
        return (self.applies_back_to is not None and self.applies_back_to <= conduct < self.effective_from
                and self.in_force(handled))  # fmt: skip

    def covers(self, marks: Marks) -> bool:
        return self.marks == "any" or marks == "any" or self.marks == marks

    def cite(self) -> str:
        return f"{self.source}, from {self.effective_from.isoformat()}" + (", U" if self.confidence == "U" else "")


@dataclass(frozen=True)
class ThresholdTable:
    rules: tuple[Rule, ...]
    version: str = ""

    def rules_for(self, article: str, conduct_date: date, handled_on: date | None = None,
                  marks: Marks = "any") -> tuple[Rule, ...]:  # fmt: skip
        """Rules for an article ("ART_142_1" or "142-1") that apply to conduct on `conduct_date`, in table order:
        those in force that day, plus (when `handled_on` is given) later interpretations that reach back to it."""
        key = article.removeprefix("ART_").replace("_", "-")
        return tuple(
            r for r in self.rules
            if r.article == key and r.covers(marks)
            and (r.in_force(conduct_date) or (handled_on is not None and r.applies_back(conduct_date, handled_on)))
        )  # fmt: skip

    @property
    def latest_start(self) -> date:
        return max(r.effective_from for r in self.rules)


@dataclass(frozen=True)
class PriorPenalty:
    """A criminal or administrative penalty the suspect received earlier (decision date, article of the conduct)."""

    decided_on: date
    violation: str  # ART_217 … (or the statute number)
    kind: Literal["ADMINISTRATIVE", "CRIMINAL"] = "ADMINISTRATIVE"
    decided_by: str = ""


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
    conduct_date: date | None = None
    temporal: str = "in force at the time of the conduct (CL Art.12)"


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


def _conditions(raw: Any, where: str, key: str) -> tuple[Condition, ...]:
    conditions = raw.get(key) or []
    if not isinstance(conditions, list):
        raise _fail(where, f"{key} must be a list")
    out = []
    for n, cond in enumerate(conditions):
        terms = cond.get("all_of") if isinstance(cond, Mapping) and set(cond) == {"all_of"} else None
        if not isinstance(terms, list) or not terms:
            raise _fail(f"{where} {key}[{n}]", "a condition is {all_of: [terms]} with at least one term")
        out.append(Condition(tuple(_term(t, f"{where} {key}[{n}]") for t in terms)))
    return tuple(out)


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
    if raw.get("marks", "any") not in _MARKS:
        raise _fail(where, f"marks must be one of {', '.join(_MARKS)}")
    for part in str(raw["source"]).split(";"):
        if part.split()[:1] == [] or part.split()[0] not in documents:
            raise _fail(where, f"source {part.strip()!r} does not start with a document id")
    start = _date(raw["effective_from"], f"{where} effective_from")
    end = None if raw.get("effective_to") is None else _date(raw["effective_to"], f"{where} effective_to")
    if end is not None and end < start:
        raise _fail(where, "effective_to is before effective_from")
    back = None if raw.get("applies_back_to") is None else _date(raw["applies_back_to"], f"{where} applies_back_to")
    if back is not None and back >= start:
        raise _fail(where, "applies_back_to must be before effective_from")
    rule = Rule(
        id=rule_id, article=article, name_zh=str(raw["name_zh"]), offence_type=cast(OffenceType, raw["offence_type"]),
        family=str(raw["family"]), source=str(raw["source"]), effective_from=start, effective_to=end,
        confidence=cast(Confidence, raw["confidence"]), any_of=_conditions(raw, where, "any_of"),
        trigger=None if raw.get("trigger") is None else str(raw["trigger"]),
        not_evaluated=_texts(raw.get("not_evaluated"), f"{where} not_evaluated"),
        note=None if raw.get("note") is None else str(raw["note"]),
        concurrent_with=_texts(raw.get("concurrent_with"), f"{where} concurrent_with"),
        applies_back_to=back, marks=cast(Marks, raw.get("marks", "any")),
        review_if=_conditions(raw, where, "review_if"),
        review_note=None if raw.get("review_note") is None else str(raw["review_note"]),
    )  # fmt: skip
    if rule.offence_type == "conduct" and rule.any_of:
        raise _fail(where, "a conduct offence has no amount conditions")
    if rule.offence_type != "amount" and not rule.trigger:
        raise _fail(where, f"a {rule.offence_type} offence needs its statutory trigger")
    if rule.offence_type == "amount" and not rule.any_of and not rule.not_evaluated:
        raise _fail(where, "an amount rule without conditions must say why in not_evaluated")
    if rule.review_if and not rule.review_note:
        raise _fail(where, "review_if needs a review_note naming what was not found")
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
            same = a.article == b.article and a.family == b.family and a.covers(b.marks) and b.covers(a.marks)
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


# -- circumstances -----------------------------------------------------------------------------------------------


def _two_years_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 2)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 2, day=28)


def repeat_offence(article: str, prior_penalties: Iterable[PriorPenalty], conduct_from: date,
                   conduct_to: date | None = None) -> bool:  # fmt: skip
    """True when a penalty for the same kind of conduct was decided before the conduct and the conduct (or part of
    it) happened within two years after it (I2025: 二年内…受过刑事处罚或者行政处罚后再次实施)."""
    key = article.removeprefix("ART_").replace("_", "-")
    group = REPEAT_GROUPS.get(key, frozenset({key}))
    last = conduct_to or conduct_from
    for prior in prior_penalties:
        kind = prior.violation.removeprefix("ART_").replace("_", "-")
        if kind in group and prior.decided_on < last and conduct_from <= _two_years_after(prior.decided_on):
            return True
    return False


def _quantities(article: str, facts: Mapping[str, Any], conduct: date, conduct_to: date | None,
                prior_penalties: Iterable[PriorPenalty]) -> dict[str, int | None]:  # fmt: skip
    """The numeric facts the table reads, with the circumstances derived."""
    q: dict[str, int | None] = {name: _count(name, facts.get(name)) for name in QUANTITIES}
    for name in FACT_QUANTITIES:  # money given in yuan (`…_yuan`) when the fen figure is absent
        if name.endswith("_fen") and q[name] is None and facts.get(name[:-4] + "_yuan") is not None:
            q[name] = _count(name[:-4] + "_yuan", facts[name[:-4] + "_yuan"], scale=100)
    priors = list(prior_penalties)
    if priors:
        q["repeat_offender"] = 1 if repeat_offence(article, priors, conduct, conduct_to) else 0
    if str(facts.get("labels_made_by") or "").upper() == "OTHERS":
        q["labels_of_others"] = 1
    split = q["labels_sold"] is not None or q["labels_held"] is not None
    if split:
        sold, held = q["labels_sold"] or 0, q["labels_held"] or 0
        if q["labels_of_others"]:
            # O2011 Art.9: a seller of others' labels is liable for what was sold; held labels are an attempt.
            q["labels"] = sold
        elif q["labels"] is None:
            q["labels"] = sold + held  # made by the suspect: every label made counts (非法制造)
    return q


def _count(name: str, value: Any, scale: int = 1) -> int | None:
    """A reported quantity as a non-negative integer (booleans → 0 / 1); anything else is a clear error."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.replace(",", "")) if value.strip() else None
        except ValueError:
            raise ValueError(f"fact {name}: not a number: {value!r}") from None
        if value is None:
            return None
    if not isinstance(value, int | float) or value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"fact {name}: not a number: {value!r}")
    if value < 0:
        raise ValueError(f"fact {name}: negative: {value!r}")
    return round(value * scale) if scale != 1 or isinstance(value, float) else int(value)


def _day(value: Any, what: str) -> date:
    """A date given as a date, a datetime (its calendar day) or an ISO string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise ValueError(f"{what}: not a date: {value!r}")


def _prior(value: Any) -> PriorPenalty:
    """A prior penalty as a `PriorPenalty` or a mapping with its fields (the CaseLead v2 record)."""
    if isinstance(value, PriorPenalty):
        return value
    if isinstance(value, Mapping) and value.get("decided_on") is not None and value.get("violation"):
        return PriorPenalty(_day(value["decided_on"], "prior penalty decided_on"), str(value["violation"]),
                            cast(Any, str(value.get("kind") or "ADMINISTRATIVE").upper()),
                            str(value.get("decided_by") or ""))  # fmt: skip
    raise ValueError(f"prior penalty: needs decided_on and violation, got {value!r}")


def _violation(value: Any) -> str:
    """ART_219_1, art_219_1, ART_219-1, 219-1, "219_1", 219 → the bus's enum name."""
    text = str(value).strip().upper().replace("-", "_")
    key = text if text.startswith("ART_") or text == "OTHER" else "ART_" + text
    if key not in VIOLATIONS:
        raise ValueError(f"unknown violation {value!r}: one of {', '.join(sorted(VIOLATIONS))}")
    return key


def _marks(facts: Mapping[str, Any], marks: str | None) -> Marks:
    given = (marks or str(facts.get("mark_use") or "")).lower()
    return "services" if given == "services" else "goods" if given == "goods" else "any" if given == "any" else "goods"


# -- assessment --------------------------------------------------------------------------------------------------


def _assessment(violation: str, rule: Rule, status: Status, uncertain: bool, met_by: tuple[str, ...],
                what: str, tail: str = "") -> Assessment:  # fmt: skip
    return Assessment(article=violation, status=status, rule_id=rule.id, source=rule.source,
                      effective_from=rule.effective_from, confidence=rule.confidence, uncertain=uncertain,
                      met_by=met_by, explanation=f"{what} ({rule.cite()}){tail}")  # fmt: skip


def _evaluate(violation: str, rules: tuple[Rule, ...], q: Mapping[str, int | None], day: date) -> Assessment:
    if not rules:
        return Assessment(violation, "NO_RULE", None, None, None, None, True, (),
                          f"no threshold rule for {violation} on {day.isoformat()}")  # fmt: skip
    ranked = sorted(rules, key=lambda r: (_RANK[r.confidence], -r.effective_from.toordinal(), r.id))
    for rule in ranked:
        if rule.offence_type == "conduct":
            return _assessment(violation, rule, "CONDUCT", rule.confidence == "U", (),
                               f"conduct offence, no amount threshold: {rule.trigger}")  # fmt: skip
    for rule in ranked:
        for condition in rule.any_of:
            if condition.met(q):
                return _assessment(violation, rule, "MET", rule.confidence == "U", condition.quantities,
                                   condition.explain(q))  # fmt: skip
    for rule in ranked:
        if rule.offence_type != "amount":
            review = f"; no figure met, review: {'; '.join(rule.not_evaluated)}" if rule.any_of else ""
            return _assessment(violation, rule, "NEEDS_REVIEW", True, (),
                               f"{rule.offence_type} offence ({rule.trigger}), not decidable from amounts", review)
        if not rule.any_of:
            return _assessment(violation, rule, "NEEDS_REVIEW", True, (), "; ".join(rule.not_evaluated))
    for rule in ranked:
        for condition in rule.review_if:
            if condition.met(q):
                return _assessment(violation, rule, "NEEDS_REVIEW", True, condition.quantities,
                                   f"no known figure met, but {condition.explain(q)}: {rule.review_note}")
    rule = ranked[0]
    used = sorted({q_ for r in rules for c in r.any_of for q_ in c.quantities
                   if q.get(q_) is not None and q_ not in CIRCUMSTANCES})  # fmt: skip
    reported = ", ".join(f"{n} {q.get(n) or 0:,}" for n in used) or "no threshold quantity reported"
    others = [r.source for r in ranked[1:]]
    gaps = [gap for r in ranked for gap in r.not_evaluated]
    uncertain = not used or bool(gaps)
    tail = (f"; also checked {' | '.join(others)}" if others else "") + (
        f"; not evaluated: {'; '.join(gaps)}" if gaps else ""
    )
    return _assessment(violation, rule, "NOT_MET", uncertain, (), f"no condition met: {reported}", tail)


def assess(violation: str, facts: Mapping[str, Any], conduct_date: date | str, table: ThresholdTable | None = None,
           *, handled_on: date | str | None = None, prior_penalties: Iterable[PriorPenalty | Mapping[str, Any]] = (),
           conduct_to: date | str | None = None, marks: str | None = None) -> Assessment:  # fmt: skip
    """Assess one article against a case's facts as of the date of the conduct. The public entry point.

        from datetime import date
        from leadbus.processors.core.thresholds import PriorPenalty, assess
        a = assess("ART_214", {"illegal_gains_fen": 3_000_000}, date(2022, 1, 1))
        a.status, a.uncertain, a.rule_id      # ("MET", False, "ART_214/I2025"): I2025 reaches back (TIME2001 ¶2)

    Arguments:

    - `violation`: ART_140 … ART_219_1 or OTHER; also the statute number ("219-1", "219_1", 219) in any case.
      Unknown → ValueError.
    - `facts`: a mapping of quantities by name (`QUANTITIES`): money in **fen** (1万元 = 1_000_000), or in yuan
      under the same name ending `_yuan` (`sales_amount_yuan`); counts as integers. Absent / None = not reported.
      Negative or non-numeric → ValueError. Optional descriptors: `labels_made_by` "SELF" / "OTHERS" (215: a
      seller of labels made by others, O2011 Art.9), `mark_use` "GOODS" / "SERVICES" (213), and the circumstances
      `repeat_offender` / `labels_of_others` as 0 / 1 when not derived here. Names used by the table:
      illegal_business_amount_fen (非法经营数额), illegal_gains_fen (违法所得), sales_amount_fen (销售金额),
      goods_value_fen (货值金额 of goods / copies not yet sold), loss_fen (损失), copies (复制品 sold / made),
      copies_held (复制品 held for sale), works, clicks, members, trademark_kinds, patents, labels (标识 made or
      sold), labels_sold, labels_held, rights_holder_bankrupt (0 / 1).
    - `conduct_date`: when the conduct happened — never the date of the report (CL Art.12, TIME2001); a date, a
      datetime or an ISO string. For conduct over a period, its first act, with `conduct_to` its last: the rules
      are those of the last act (the conduct reaches up to it); the two-year repeat window looks at the whole period.
    - `handled_on`: the date the case is handled; None = today's law (after every rule of the table took effect).
      Decides whether a later interpretation reaches back (TIME2001 ¶2) or a lighter later law applies (¶3).
    - `prior_penalties`: the suspect's earlier penalties (`PriorPenalty` or mappings with decided_on, violation,
      kind, decided_by); one for the same kind of conduct decided before the conduct and at most two years before
      it makes a repeat offender (I2025's lower tiers: 218 3万/5万, 219 10万).
    - `marks`: "goods" (default, as a v1 lead), "services" (service marks, Art.213 from 2021-03-01) or "any";
      overrides `facts["mark_use"]`.

    Returns an `Assessment`: `status` MET / NOT_MET / CONDUCT / NEEDS_REVIEW / NO_RULE; `uncertain` True exactly
    where the answer rests on a figure or a status the review did not find (or nothing was reported); `rule_id`,
    `source`, `explanation`, `temporal` (which temporal rule chose it). Of several rules met, the best-sourced one
    (V1 before V2 before U, then the newest) is named.
    """
    key = _violation(violation)
    if not isinstance(facts, Mapping):
        raise ValueError(f"facts must be a mapping of quantities, got {type(facts).__name__}")
    first = _day(conduct_date, "conduct_date")
    last = None if conduct_to is None else _day(conduct_to, "conduct_to")
    if last is not None and last < first:
        raise ValueError("conduct_to is before conduct_date")
    tbl = table or load_table()
    day = last or first  # the rules of the last act: the conduct reaches up to it
    # handled_on before the conduct's last act (a conduct period reported into the future) is read as "now"
    handled = max(day, tbl.latest_start if handled_on is None else _day(handled_on, "handled_on"))
    use = _marks(facts, marks)
    priors = [_prior(p) for p in prior_penalties or ()]
    q = _quantities(key, facts, first, last, priors)
    if key == "OTHER":
        rules: tuple[Rule, ...] = ()
    else:
        rules = tbl.rules_for(key, day, handled, use)
    result = _evaluate(key, rules, q, day)
    back = [r for r in rules if not r.in_force(day)]
    temporal = "in force at the time of the conduct (CL Art.12)"
    if back:
        temporal += f"; {', '.join(r.id for r in back)} reaches back: no interpretation at the time (TIME2001 ¶2)"
    if key == "ART_213" and use == "services" and not rules and day < SERVICE_MARKS_FROM:
        result = Assessment(key, "NO_RULE", None, None, None, None, False, (),
                            "service marks are within Art.213 only for conduct from 2021-03-01 (CLA11)")
    elif key == "ART_213" and use == "services" and not rules:
        result = Assessment(key, "NEEDS_REVIEW", None, "CLA11 Art.213", SERVICE_MARKS_FROM, "V1", True, (),
                            "service marks: an offence from 2021-03-01 (CLA11, 情节严重) that no interpretation "
                            "construed before I2025 (2025-04-26); handled before it, a person decides")
    elif not rules and key != "OTHER":
        created = min((r for r in tbl.rules if r.violation == key), key=lambda r: r.effective_from, default=None)
        if created is not None and created.effective_from > day and created.source.startswith("CLA"):
            # the article was created by an amendment after the conduct: clearly no such offence then (CL Art.12)
            result = Assessment(key, "NO_RULE", None, None, None, None, False, (),
                                f"no offence under {key} before {created.effective_from.isoformat()} "
                                f"({created.source.split(';')[0]} created it)")
    if result.status in ("MET", "CONDUCT") and handled > day and key != "OTHER":
        later = tbl.rules_for(key, handled, None, use)
        if later and set(later) != set(rules):
            lighter = _evaluate(key, later, q, handled)
            if lighter.status in ("NOT_MET", "NO_RULE") and not lighter.uncertain:
                return Assessment(
                    key, lighter.status, lighter.rule_id, lighter.source, lighter.effective_from,
                    lighter.confidence, False, (),
                    f"met under the law of the time ({result.explanation}), but the law when handled is lighter: "
                    f"{lighter.explanation}", day, "the lighter later law (CL Art.12; TIME2001 ¶3)")
    return Assessment(result.article, result.status, result.rule_id, result.source, result.effective_from,
                      result.confidence, result.uncertain, result.met_by, result.explanation, day, temporal)


def assess_case(violations: Iterable[str], facts: Mapping[str, Any], conduct_date: date | str,
                table: ThresholdTable | None = None, **options: Any) -> list[Assessment]:  # fmt: skip
    """One assessment per distinct violation of the case, in first-seen order (options as for `assess`)."""
    return [assess(v, facts, conduct_date, table, **options) for v in dict.fromkeys(violations)]


def should_transfer(assessments: Iterable[Assessment], *, police_measures_needed: bool = False) -> bool:
    """Whether the agency must hand the case over to public security (Decree 310 as revised in 2020).

    - Art.3 ¶1: any article meets a threshold (MET) or is a conduct offence (CONDUCT);
    - Art.3 ¶2: in an IP case (213–219-1) the agency has a reasonable suspicion of crime and needs police
      measures to establish whether the threshold is reached (`police_measures_needed`, stated by the agency):
      an IP article assessed NOT_MET or NEEDS_REVIEW is then handed over too.
    """
    return bool(transfer_grounds(assessments, police_measures_needed=police_measures_needed))


def transfer_grounds(assessments: Iterable[Assessment], *, police_measures_needed: bool = False) -> list[str]:
    """The reasons to hand over, each naming its provision; empty when there is none."""
    grounds = []
    for a in assessments:
        if a.status in ("MET", "CONDUCT"):
            grounds.append(f"{a.article} {a.status} (R310 Art.3 ¶1): {a.explanation}")
        elif (police_measures_needed and a.status in ("NOT_MET", "NEEDS_REVIEW")
              and a.article.removeprefix("ART_").replace("_", "-") in IP_ARTICLES):  # fmt: skip
            grounds.append(f"{a.article} reasonable suspicion, police measures needed to establish the amount "
                           f"(R310 Art.3 ¶2): {a.explanation}")
    return grounds
