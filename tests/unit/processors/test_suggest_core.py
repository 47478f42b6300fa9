"""The weak-signal scorer: blocking, weights, explanations, rejected pairs, determinism; the offline CLI rows."""

from __future__ import annotations

import csv
import json
import math

from leadbus.processors.core.linking import link_and_suggest
from leadbus.processors.core.suggest import FIELDS, suggest
from leadbus.producers.labelled import weak_labelled_leads


def _cases() -> dict[str, list[str]]:
    return {
        "A": ["addr:33|杭州市|人民路1号2栋301室", "bldg:33|杭州市|人民路1号", "core:鑫盛服饰", "trade:鑫盛",
              "cat:APPAREL_FOOTWEAR", "city:33杭州市", "surname:王"],
        "B": ["addr:33|杭州市|人民路1号2栋301室", "bldg:33|杭州市|人民路1号", "core:鑫盛服饰", "trade:鑫盛",
              "cat:APPAREL_FOOTWEAR", "city:33杭州市", "surname:王"],
        "C": ["bldg:33|杭州市|人民路1号", "core:华锐电子", "trade:华锐", "cat:ELECTRONICS", "city:33杭州市"],
        **{f"X{i}": [f"core:其他{i}", "cat:FOOD", "city:11北京市", "surname:王", f"addr:11|北京市|路{i}号",
                     f"bldg:11|北京市|路{i}号"] for i in range(200)},
    }


def test_shared_address_and_name_rank_first_with_explanations() -> None:
    found = suggest(_cases(), min_score=0.0)
    assert (found[0].case_a, found[0].case_b) == ("A", "B")
    assert 0.5 < found[0].score <= 1.0
    assert "33|杭州市|人民路1号" in found[0].explain() and "core=鑫盛服饰" in found[0].explain()
    assert all(0.0 <= s.score <= 1.0 for s in found)
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    # the building alone, with other names and goods, weighs far less
    ac = next(s for s in found if (s.case_a, s.case_b) == ("A", "C"))
    assert ac.score < 0.5 and any(not value for _, value, _ in ac.evidence)  # disagreements explained (≠)


def test_blocking_never_compares_all_pairs() -> None:
    # 200 cases share only a surname and a city, which block (surname within city) only up to max_block cases
    found = suggest(_cases(), min_score=0.0, max_block=40)
    assert not any(s.case_a.startswith("X") for s in found)


def test_rejected_pairs_are_never_suggested() -> None:
    found = suggest(_cases(), min_score=0.0, rejected=[("B", "A")])
    assert ("A", "B") not in {(s.case_a, s.case_b) for s in found}


def test_weights_are_log2_likelihood_ratios() -> None:
    cases = {f"C{i}": [f"ip:10.0.{i}.1"] for i in range(100)} | {"A": ["ip:1.2.3.4"], "B": ["ip:1.2.3.4"]}
    (only,) = suggest(cases, min_score=0.0)
    u = 2 / 102  # 2 of the 102 cases carrying an IP carry this one
    assert math.isclose(only.weight, -math.log2(101) + math.log2(FIELDS["ip"].m / u), abs_tol=1e-3)
    assert math.isclose(only.score, 1 / (1 + 2 ** -only.weight), abs_tol=1e-3)


def test_offline_suggestions_are_deterministic_and_between_distinct_cases() -> None:
    leads = [lead for lead, _ in weak_labelled_leads(1500, seed=3)]
    cases, first = link_and_suggest(leads)
    _, second = link_and_suggest(leads)
    assert first == second
    ids = set(cases.values())
    assert first and all(s.case_a in ids and s.case_b in ids and s.case_a < s.case_b for s in first)


def test_cli_writes_suggestions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from leadbus.cli import app

    leads = [lead for lead, _ in weak_labelled_leads(800, seed=5)]
    source = tmp_path / "leads.jsonl"
    source.write_text("".join(lead.model_dump_json() + "\n" for lead in leads), encoding="utf-8")
    result = CliRunner().invoke(app, ["link", "--input", str(source), "--output", str(tmp_path / "cases.csv"),
                                      "--suggestions", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    with (tmp_path / "cases.csv").open(encoding="utf-8") as handle:
        case_ids = {row["case_id"] for row in csv.DictReader(handle)}
    with (tmp_path / "s.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["case_a", "case_b", "score", "evidence"]
        rows = list(reader)
    assert rows
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert all(r["case_a"] in case_ids and r["case_b"] in case_ids and r["case_a"] != r["case_b"] for r in rows)


def _lead(**extra):  # type: ignore[no-untyped-def]
    from leadbus.models import CaseLead
    from leadbus.processors.core.normalize import normalise
    from tests.conftest import _BASE_LEAD

    data = {**_BASE_LEAD, "lead_id": "00000000-0000-4000-8000-000000000001", **extra}
    return normalise(CaseLead.model_validate(data)).lead


def test_v3_fields_give_weak_signals_and_v2_leads_give_none_of_them() -> None:
    from leadbus.processors.core.suggest import weak_signals

    plain = weak_signals(_lead())
    assert not [s for s in plain if s.split(":")[0] in ("product", "pbrand", "stail", "tail", "sender")
                and not s.startswith("sender:")]
    found = weak_signals(_lead(
        senders=[{"name": " 王** ", "phone": "138 xxxx 5678"}, {"name": "仓库", "phone": "尾号1234"}, {}],
        operator={"name": "王小明", "phone": "+86 139-0000-4321"},
        return_addresses=[{"province": "33", "city": "金华市", "detail": "浙江省金华市 义乌国际商贸城B区 3楼1201号"}],
        products=[{"name": "AJ1 高帮运动鞋", "brand": "ＮＩＫＥ"}, {"name": "-"}],
    ))  # fmt: skip
    assert {"stail:王|5678", "tail:5678", "tail:1234", "stail:王|4321", "sender:王小明", "product:aj1高帮运动鞋",
            "pbrand:nike", "addr:33金华|义乌国际商贸城b区3楼1201号", "bldg:33金华|义乌国际商贸城"} <= set(found)
    assert "sender:仓库" not in found and not any(s.startswith("stail:仓") for s in found)


def test_rare_shared_contacts_outrank_a_shared_common_product() -> None:
    filler = {f"F{i}": [f"product:p{i % 50}", "city:33杭州", f"stail:李|{i:04d}"] for i in range(400)}
    cases = filler | {"A": ["stail:王|5678", "city:33杭州"], "B": ["stail:王|5678", "city:33杭州"],
                      "C": ["product:p1", "city:33杭州"], "D": ["product:p1", "city:33杭州"]}
    found = suggest(cases, min_score=0.0)
    ranked = [(s.case_a, s.case_b) for s in found]
    assert ranked[0] == ("A", "B")
    assert all(0.0 <= s.score <= 1.0 for s in found)
    assert found[0].explain().startswith("stail=王|5678(+")


def test_cli_leaves_out_bad_lines_and_names_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from leadbus.cli import app

    leads = [lead for lead, _ in weak_labelled_leads(120, seed=7)]
    good = [lead.model_dump_json() for lead in leads]
    broken = json.loads(good[3])
    broken["lead_id"] = "not-a-uuid"
    bad = ["{not json", json.dumps(broken, ensure_ascii=False), "[1, 2]", "\ufeff", "null"]
    lines = good[:3] + bad[:2] + good[3:60] + bad[2:] + good[60:]
    source = tmp_path / "leads.jsonl"
    source.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe not utf-8\n")
    out = tmp_path / "cases.csv"
    result = CliRunner().invoke(app, ["link", "--input", str(source), "--output", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["lead_id"] for r in rows] == [lead.lead_id for lead in leads]  # every valid lead, in order
    assert "line 4:" in result.output and "line 5:" in result.output and "line(s) refused" in result.output

    strict = CliRunner().invoke(app, ["link", "--input", str(source), "--output", str(tmp_path / "s.csv"),
                                      "--strict"])
    assert strict.exit_code == 2 and not (tmp_path / "s.csv").exists()
    missing = CliRunner().invoke(app, ["link", "--input", str(tmp_path / "nope.jsonl"), "--output", str(out)])
    assert missing.exit_code == 2 and "no such input file" in missing.output


def test_cli_refuses_what_intake_refuses_with_the_same_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An identifier failing its check character (or a lead from the future) is no lead offline either: the same
    pure check as intake's (`validate_lead`), the same reason code, on stderr; --strict stops."""
    from datetime import UTC, datetime, timedelta

    from typer.testing import CliRunner

    from leadbus.avro import encode, packaged_catalog
    from leadbus.cli import app
    from leadbus.models import CaseLead
    from leadbus.processors.core.intake import LeadRefusal, Rejection, examine, validate_lead
    from leadbus.processors.core.records import Source

    leads = [lead for lead, _ in weak_labelled_leads(40, seed=11)]
    good = [json.loads(lead.model_dump_json()) for lead in leads]

    def bad(index: int, change) -> dict:  # type: ignore[no-untyped-def, type-arg]
        record = json.loads(json.dumps(good[index]))
        change(record)
        return record

    def subject(**fields):  # type: ignore[no-untyped-def]
        return lambda r: r["subject"].update(fields)

    future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused = {
        "RESIDENT_ID_CHECKSUM": bad(1, subject(kind="INDIVIDUAL", name="王小明", id_number="110105194912310021")),
        "BANK_CARD_LUHN": bad(2, lambda r: r.update(payment_accounts=["６２２２ ０２０９ ３８５８ ３８０６ ５４４"])),
        "TIME_IN_FUTURE": bad(3, lambda r: r.update(reported_at=future)),
    }
    now = datetime.now(UTC)
    catalog = packaged_catalog()
    for reason, record in refused.items():
        checked = validate_lead(record, now)
        assert isinstance(checked, LeadRefusal) and checked.reason == reason
        # intake, on the same lead as Avro bytes, refuses it for the same reason through the same function
        avro = CaseLead.model_validate(good[0]).to_avro() | {k: v for k, v in record.items() if k in ("lead_id",)}
        if reason == "RESIDENT_ID_CHECKSUM":
            avro["subject"] = dict(avro["subject"], id_number=record["subject"]["id_number"])
        elif reason == "BANK_CARD_LUHN":
            avro["payment_accounts"] = record["payment_accounts"]
        else:
            continue  # the Avro form holds a time, not text: checked above
        outcome = examine(encode(catalog.latest("cn.leadbus.CaseLead"), avro),
                          Source(f"leadbus.intake.{record['publisher']['agency']}", 0, 1), catalog, now)
        assert isinstance(outcome, Rejection) and outcome.reason == reason
    lines = [json.dumps(r, ensure_ascii=False) for r in good[:5]] + [
        json.dumps(r, ensure_ascii=False) for r in refused.values()] + ["  {\"lead_id\": 1", "\u3000"] + [
        json.dumps(r, ensure_ascii=False) for r in good[5:]]
    source = tmp_path / "leads.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "cases.csv"
    result = CliRunner().invoke(app, ["link", "--input", str(source), "--output", str(out),
                                      "--suggestions", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        linked = [row["lead_id"] for row in csv.DictReader(handle)]
    assert linked == [r["lead_id"] for r in good]  # the refused copies share lead ids with good ones: not linked
    assert len(linked) == len(good)
    for number, reason in enumerate(refused, 6):
        assert f"line {number}: {reason}" in result.output
    assert "line 9: DECODE_NOT_JSON" in result.output and "4 line(s) refused" in result.output
    strict = CliRunner().invoke(app, ["link", "--input", str(source), "--output", str(tmp_path / "x.csv"),
                                      "--strict"])
    assert strict.exit_code == 2 and "line 6: RESIDENT_ID_CHECKSUM" in strict.output
    assert not (tmp_path / "x.csv").exists()


def test_messy_and_old_leads_give_the_signals_of_clean_ones() -> None:
    """Full-width characters and odd whitespace (as agencies paste them) change no weak signal; a lead without the
    v3 fields (an old v1/v2 lead's JSON) still links and gives the signals it has."""
    from leadbus.models import V3_FIELDS, CaseLead
    from leadbus.processors.core.normalize import normalise
    from leadbus.processors.core.suggest import weak_signals

    def fullwidth(text: str) -> str:
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)

    def messy(text: str) -> str:
        return "\u3000" + " \t".join(fullwidth(text)) + "\u00a0"

    clean = _lead(
        subject={"name": "王小明", "kind": "INDIVIDUAL", "phones": ["13800138000"],
                 "address": {"province": "33", "city": "杭州市", "detail": "西湖区文三路100号3幢201室"}},
        senders=[{"name": "王**", "phone": "138****5678"}], operator={"name": "王小明", "phone": "尾号4321"},
        return_addresses=[{"province": "33", "city": "金华市", "detail": "义乌国际商贸城B区3楼1201号"}],
        products=[{"name": "AJ1 高帮运动鞋", "brand": "NIKE"}],
    )  # fmt: skip
    data = json.loads(clean.model_dump_json())
    data["subject"]["name"] = "王 小明"
    detail = messy("西湖区文三路100号3幢201室")
    data["subject"]["address"] = {"province": "33", "city": " 杭州市\u3000", "detail": detail}
    data["senders"] = [{"name": "\u3000王＊＊ ", "phone": "１３８ ＊＊＊＊ ５６７８"}]
    data["operator"] = {"name": " 王\u3000小明", "phone": "尾号４３２１"}
    data["return_addresses"] = [{"province": "33", "city": "金华市", "detail": messy("义乌国际商贸城B区3楼1201号")}]
    data["products"] = [{"name": fullwidth("AJ1  高帮运动鞋 "), "brand": fullwidth("nike")}]
    found = weak_signals(normalise(CaseLead.model_validate(data)).lead)
    assert found == weak_signals(clean)
    assert {"person:王小明", "surname:王", "stail:王|5678", "stail:王|4321", "product:aj1高帮运动鞋"} <= set(found)

    old = {k: v for k, v in data.items() if k not in V3_FIELDS}
    lead = normalise(CaseLead.model_validate(old)).lead
    assert not [s for s in weak_signals(lead) if s.split(":")[0] in ("product", "pbrand", "tail")]
    assert "person:王小明" in weak_signals(lead)


def test_the_weight_ceiling_bounds_every_pairs_weight() -> None:
    """`weight_ceiling` is never below the bits `score_pair` gives (the stream skips pairs on it, issue #16)."""
    from collections import defaultdict

    from leadbus.processors.core.linking import _link_all, case_weak_signals
    from leadbus.processors.core.suggest import agreement_ceilings, profile_of, score_pair, weight_ceiling

    _, store = _link_all(lead for lead, _ in weak_labelled_leads(1500, seed=3))
    profiles = {c: profile_of(s) for c, s in sorted(case_weak_signals(store).items())}
    df: dict[str, int] = defaultdict(int)
    carrying: dict[str, int] = defaultdict(int)
    for profile in profiles.values():
        for name, values in profile.items():
            carrying[name] += 1
            for value in values:
                df[f"{name}:{value}"] += 1
    ceilings = agreement_ceilings(carrying)
    ids = list(profiles)
    checked = 0
    for i, a in enumerate(ids[:300]):
        for b in ids[i + 1 : 300]:
            bits = sum(w for _, _, w in score_pair(profiles[a], profiles[b], df, carrying))
            ceiling = weight_ceiling(profiles[a], profiles[b], ceilings)
            assert bits <= ceiling + 1e-9, (a, b, bits, ceiling)
            checked += 1
    assert checked > 40_000
