"""The dashboard's state, without Kafka or a browser: what it keeps, counts, finds and withholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadbus.processors.core.handover import open_handover, scan
from leadbus.processors.core.routing import bulletin
from leadbus.sinks.dashboard_state import Event, RegionBoard, case_view, looks_unmasked, step_view, yuan

T = datetime(2026, 11, 1, 8, tzinfo=UTC)
NOW = int((T + timedelta(days=1)).timestamp() * 1000)  # the board's clock: a day after the cases opened
RID, PHONE, CARD = "11010519491231002X", "+8613812345678", "6222021234567890128"


def _case(case_id: str, *, name: str = "王小明", uscc: str | None = None, province: str = "33",
          version: int = 1, merged_into: str | None = None,
          categories: tuple[str, ...] = ("COSMETICS",)) -> dict[str, Any]:
    identifiers = [{"kind": "rid", "value": RID}, {"kind": "phone", "value": PHONE}, {"kind": "acct", "value": CARD}]
    if uscc:
        identifiers.insert(0, {"kind": "uscc", "value": uscc})
    case = {
        "case_id": case_id, "version": version, "members": ["l1"], "suspect_name": name,
        "reporters": [{"agency": "SAMR", "province": province}, {"agency": "MPS", "province": "00"}],
        "identifiers": identifiers, "suspect_province": province, "categories": list(categories),
        "violations": ["ART_214"], "facts": {"sales_amount_fen": 6_000_000, "illegal_business_amount_fen": None},
        "first_reported_at": T, "last_reported_at": T, "handling": "OPEN", "merged_into": merged_into,
    }
    return {**bulletin(case, "yrd"), "published_at": T}


def _apply(board: RegionBoard, record: dict[str, Any]) -> list[Event]:
    return board.bulletin(record, case_view(record), NOW)


def _steps(case_id: str, overdue: bool) -> list[dict[str, Any]]:
    state, steps = open_handover(case_id, "SAMR", "33", at=T, assessment=f"王小明 {RID}")
    if overdue:
        steps += scan(state, T + timedelta(days=5))[1]
    return [step_view({**s.__dict__, "recorded_at": T}) for s in steps]


def test_money_is_shown_in_yuan_without_floats() -> None:
    assert [yuan(6_000_000), yuan(5), yuan(-150), yuan(123_456_789_01)] == [
        "60,000.00", "0.05", "-1.50", "123,456,789.01"]


def test_search_finds_case_ids_company_names_and_masked_identifiers_only() -> None:
    board = RegionBoard("yrd")
    _apply(board, _case("CASE-0000000000000001", name="杭州美丽日化有限公司", uscc="91330106MA2H000001"))
    _apply(board, _case("CASE-0000000000000002"))

    def found(q: str) -> list[str]:
        return [c["case_id"] for c in board.search(q)]

    assert found("美丽日化") == ["CASE-0000000000000001"]
    assert found("case-0000000000000002") == ["CASE-0000000000000002"]
    assert sorted(found("110105********002X")) == ["CASE-0000000000000001", "CASE-0000000000000002"]
    assert len(found("+86138****5678")) == 2
    assert found(RID) == found(CARD) == found("13812345678") == found("") == []
    individual = board.cases["CASE-0000000000000002"]
    assert individual["suspect_name"] == "王**" and individual["amount_yuan"] == "60,000.00"
    assert RID not in str(board.cases) and CARD not in str(board.cases) and "王小明" not in str(board.cases)


def test_unmasked_values_are_withheld() -> None:
    record = _case("CASE-0000000000000003")
    record["identifiers"] = [{"kind": "rid", "value": RID}, {"kind": "phone", "value": PHONE},
                             {"kind": "shop", "value": f"淘宝:{CARD}"}, {"kind": "domain", "value": "fake.example"}]
    withheld: list[int] = []
    view = case_view(record, lambda: withheld.append(1))
    assert view["identifiers"] == [{"kind": "domain", "value": "fake.example"}] and len(withheld) == 3
    assert looks_unmasked("acct", "6222***********0128") is False
    assert looks_unmasked("uscc", "91330106MA2H000001") is False


def test_counts_follow_the_latest_bulletin_and_a_merged_case_leaves() -> None:
    board = RegionBoard("yrd")
    _apply(board, _case("CASE-A", province="31"))
    _apply(board, _case("CASE-B", province="33", categories=("FOOD", "FOOD")))
    assert board.counts() == {"total": 2, "by_province": {"31": 1, "33": 1},
                              "by_category": {"COSMETICS": 1, "FOOD": 1}}
    _apply(board, _case("CASE-A", province="32", version=2))
    assert _apply(board, _case("CASE-A", province="31", version=1)) == []  # stale
    assert board.counts()["by_province"] == {"32": 1, "33": 1}
    events = _apply(board, _case("CASE-B", version=3, merged_into="CASE-A"))
    assert [kind for kind, _ in events] == ["removed"]
    assert board.counts() == {"total": 1, "by_province": {"32": 1}, "by_category": {"COSMETICS": 1}}
    assert board.step("CASE-B", _steps("CASE-B", overdue=False)[0], NOW) == []
    assert "CASE-B" not in board.board


def test_the_board_shows_only_cases_of_its_bulletins_and_marks_breaches() -> None:
    board = RegionBoard("yrd")
    early = _steps("CASE-EARLY", overdue=True)  # steps before the bulletin: parked, not shown
    assert all(board.step("CASE-EARLY", s, NOW) == [] for s in early)
    for s in _steps("CASE-ELSEWHERE", overdue=True):  # never in this region
        assert board.step("CASE-ELSEWHERE", s, NOW) == []
    assert board.board == {} and board.board_rows(10, NOW) == []
    events = _apply(board, _case("CASE-EARLY"))
    assert [kind for kind, _ in events] == ["bulletin", "handover"]
    row = events[1][1]["row"]
    assert row["overdue"] and row["breached"] and row["escalated_to"] == "SPP/33" and row["phase"] == "ASSESSED"
    assert [s["event"] for s in row["steps"]] == ["OPENED", "DEADLINE_BREACHED"]
    assert "assessment" not in row["steps"][0] and "reasons" not in row["steps"][1]
    _apply(board, _case("CASE-ON-TIME"))
    on_time = _steps("CASE-ON-TIME", overdue=False)[0]
    assert board.step("CASE-ON-TIME", on_time, NOW)
    assert board.step("CASE-ON-TIME", on_time, NOW) == []  # redelivered
    assert [(r["case_id"], r["overdue"]) for r in board.board_rows(10, NOW)] == [("CASE-EARLY", True),
                                                                                 ("CASE-ON-TIME", False)]
    later = NOW + 3 * 86_400_000  # nobody acted: without a breach step yet, the passing due time marks it
    assert [(r["case_id"], r["overdue"]) for r in board.board_rows(10, later)] == [("CASE-EARLY", True),
                                                                                   ("CASE-ON-TIME", True)]
    assert "CASE-ELSEWHERE" not in str(board.board_rows(10, NOW))


# -- withdrawals ---------------------------------------------------------------------------------

def test_a_withdrawal_removes_the_case_its_row_and_search_entries_at_once() -> None:
    board = RegionBoard("yrd")
    _apply(board, _case("CASE-W", province="33", categories=("FOOD",)))
    _apply(board, _case("CASE-KEEP", province="31"))
    for step in _steps("CASE-W", overdue=True):
        board.step("CASE-W", step, NOW)
    assert "CASE-W" in board.board and [c["case_id"] for c in board.search("case-w")] == ["CASE-W"]
    events = board.withdraw("CASE-W", 2)
    assert [kind for kind, _ in events] == ["removed"]
    assert events[0][1]["counts"] == {"total": 1, "by_province": {"31": 1}, "by_category": {"COSMETICS": 1}}
    assert "CASE-W" not in board.cases and "CASE-W" not in board.board
    assert board.search("case-w") == [] and board.search("110105********002X") == [board.cases["CASE-KEEP"]]
    assert "CASE-W" not in str(board.board_rows(10, NOW)) and "CASE-W" not in str(board.newest(10))
    assert _apply(board, _case("CASE-W", version=1)) == []  # an older bulletin does not bring it back
    assert _apply(board, _case("CASE-W", version=2)) == []  # nor one as old as the withdrawal
    assert board.withdraw("CASE-W", 2) == []  # redelivered


def test_a_case_that_comes_back_shows_whole_with_the_steps_it_missed() -> None:
    board = RegionBoard("yrd")
    _apply(board, _case("CASE-BACK"))
    opened, breach = _steps("CASE-BACK", overdue=True)
    board.step("CASE-BACK", opened, NOW)
    board.withdraw("CASE-BACK", 2)
    assert board.step("CASE-BACK", breach, NOW) == []  # out of sight while withdrawn …
    assert board.board_rows(10, NOW) == []
    events = _apply(board, _case("CASE-BACK", version=3, categories=("GAMES",)))
    assert [kind for kind, _ in events] == ["bulletin", "handover"]  # … and there when it comes back
    row = events[1][1]["row"]
    assert row["breached"] and [s["event"] for s in row["steps"]] == ["OPENED", "DEADLINE_BREACHED"]
    assert board.cases["CASE-BACK"]["version"] == 3 and board.counts()["by_category"] == {"GAMES": 1}


def test_a_merge_withdrawal_removes_the_case_for_good() -> None:
    board = RegionBoard("yrd")
    _apply(board, _case("CASE-GONE"))
    assert [k for k, _ in board.withdraw("CASE-GONE", 1, merged_into="CASE-KEEP")] == ["removed"]
    assert board.step("CASE-GONE", _steps("CASE-GONE", overdue=False)[0], NOW) == []
    assert "CASE-GONE" not in board.parked and "CASE-GONE" not in board.hidden


def test_the_same_page_whatever_the_order_of_steps_and_bulletins() -> None:
    """A dashboard replaying the topics from the start reads steps and bulletins in another interleaving."""
    steps = _steps("CASE-R", overdue=True)
    live, replay = RegionBoard("yrd"), RegionBoard("yrd")
    _apply(live, _case("CASE-R"))
    live.step("CASE-R", steps[0], NOW)
    live.withdraw("CASE-R", 2)
    live.step("CASE-R", steps[1], NOW)
    _apply(live, _case("CASE-R", version=3))
    for step in steps:  # the replay reads the handover topic first
        replay.step("CASE-R", step, NOW)
    _apply(replay, _case("CASE-R"))
    replay.withdraw("CASE-R", 2)
    _apply(replay, _case("CASE-R", version=3))
    assert live.newest(10) == replay.newest(10) and live.board_rows(10, NOW) == replay.board_rows(10, NOW)
    assert live.counts() == replay.counts()


# -- masking: enterprise identifiers are public, personal data is not --------------------------------

def test_enterprise_identifiers_are_shown_and_never_counted_as_leaks() -> None:
    record = _case("CASE-CO", name="杭州美丽日化有限公司", uscc="913301061234567006")  # an all-digit USCC
    record["identifiers"].append({"kind": "icp", "value": "浙ICP备12345678号-1"})
    withheld: list[int] = []
    view = case_view(record, lambda: withheld.append(1))
    shown = {i["kind"]: i["value"] for i in view["identifiers"]}
    assert shown["uscc"] == "913301061234567006" and shown["icp"] == "浙ICP备12345678号-1"
    assert shown["rid"] == "110105********002X" and withheld == []
    for uscc in ("91330106MA2H000001", "91350211M0000XUF46", "913301061234567006"):  # pilot codes fail MOD 31
        assert looks_unmasked("uscc", uscc) is False
    assert looks_unmasked("icp", "京ICP证030173号") is False


def test_personal_data_is_withheld_and_counted_whatever_its_label() -> None:
    withheld: list[int] = []
    record = _case("CASE-LEAK")
    record["identifiers"] = [{"kind": "uscc", "value": RID},  # a resident ID labelled as a company code
                             {"kind": "icp", "value": f"浙ICP备{CARD}号"},  # no ICP number is card-length
                             {"kind": "rid", "value": RID}, {"kind": "phone", "value": PHONE},
                             {"kind": "acct", "value": CARD},
                             {"kind": "uscc", "value": "91330106MA2H000001"}]
    record["suspect_name"] = f"王小明{RID}"
    view = case_view(record, lambda: withheld.append(1))
    assert view["identifiers"] == [{"kind": "uscc", "value": "91330106MA2H000001"}]
    assert view["suspect_name"] == "***" and len(withheld) == 6
    assert RID not in str(view) and CARD not in str(view) and PHONE not in str(view)


def test_the_case_lead_v2_fields_reach_the_case_view_and_a_v1_case_shows_none() -> None:
    """Issue #15: conduct period, prior penalties (without their reference number), ICP filing numbers, labels sold /
    held and who made them, goods or services — through the routing core's bulletin and its Avro contract."""
    from datetime import date

    from leadbus.avro import decode, encode, packaged_catalog

    catalog = packaged_catalog()
    schema = catalog.latest("cn.leadbus.RegionalBulletin")
    plain = _case("CASE-V1")
    assert decode(catalog, encode(schema, plain))[1]["prior_penalties"] == []
    view = case_view(plain)
    assert (view["conduct_from"], view["prior_penalties"], view["icp_filings"], view["labels_made_by"],
            view["mark_use"]) == (None, [], [], None, None)  # fmt: skip
    icp = "浙ICP备12345678号-1"
    case = {
        "case_id": "CASE-V2", "version": 1, "members": ["l1"], "suspect_name": "杭州某标识印刷有限公司",
        "reporters": [{"agency": "SAMR", "province": "33"}], "suspect_province": "33",
        "identifiers": [{"kind": "uscc", "value": "91330106MA27XL0X5N"}, {"kind": "icp", "value": icp}],
        "categories": ["AUTO_PARTS"], "violations": ["ART_215"], "first_reported_at": T, "last_reported_at": T,
        "handling": "OPEN", "merged_into": None,
        "facts": {"sales_amount_fen": None, "illegal_business_amount_fen": None, "labels_sold": 12_000,
                  "labels_held": 30_000, "labels_made_by": "OTHERS", "mark_use": "UNKNOWN"},
        "conduct_from": date(2024, 3, 1), "conduct_to": date(2024, 12, 31),
        "prior_penalties": [{"kind": "ADMINISTRATIVE", "decided_on": date(2023, 6, 1),
                             "decided_by": "杭州市市场监督管理局", "violation": "ART_215",
                             "reference": "杭市监罚〔2023〕12号"}],
    }  # fmt: skip
    record = decode(catalog, encode(schema, {**bulletin(case, "yrd"), "published_at": T}))[1]
    view = case_view(record)
    assert (view["conduct_from"], view["conduct_to"]) == ("2024-03-01", "2024-12-31")
    assert view["prior_penalties"] == [{"kind": "ADMINISTRATIVE", "decided_on": "2023-06-01",
                                        "decided_by": "杭州市市场监督管理局", "violation": "ART_215"}]
    assert "杭市监罚" not in str(record)  # the decision's reference number stays out of the regions
    assert view["icp_filings"] == [icp]
    assert (view["labels_sold"], view["labels_held"], view["labels_made_by"], view["mark_use"]) == (
        12_000, 30_000, "OTHERS", None)  # UNKNOWN is not shown
