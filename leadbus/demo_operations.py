"""`make demo`, issue #18: one joint operation (集群战役) run by SAMR with its members, and public consumer warnings.

At start SAMR opens the operation `demo-cosmetics` (members MPS, GACC and the provinces 33 and 44) and publishes
two consumer warnings through its intake topic; as cases of Zhejiang and Guangdong appear, it joins the first
few of them to the operation. The controller (`leadbus operations`), the operation's view for SAMR and the
public warnings page run as children of the demo.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from leadbus.clients import settings_from_env
from leadbus.producers import Publisher

log = logging.getLogger("leadbus.demo")
OPERATION = "demo-cosmetics"
JOINED_AT_MOST = 8
WARNINGS: list[dict[str, Any]] = [
    {"title": "网购知名品牌化妆品谨防假冒", "goods_category": "COSMETICS", "risk": "HIGH",
     "summary": "部分网店和直播间以明显低于市场价的价格销售知名品牌化妆品，其中不少为假冒产品。",
     "advice": ["通过品牌官方旗舰店或授权渠道购买", "对价格明显偏低的商品保持警惕",
                "保留订单和聊天记录，发现问题及时投诉"],
     "sources": [{"title": "国家市场监督管理总局", "url": "https://www.samr.gov.cn/"}]},
    {"title": "跨境网购药品存在风险", "goods_category": "DRUGS", "risk": "SEVERE",
     "summary": "通过社交平台代购的境外药品来源不明，可能为假药或未经批准进口的药品。",
     "advice": ["不要通过个人代购渠道购买药品", "购买前查询药品批准文号"],
     "sources": [{"title": "国家药品监督管理局", "url": "https://www.nmpa.gov.cn/"}]},
]


class OperationsDemo:
    def __init__(self, bootstrap: str) -> None:
        self.publisher = Publisher("SAMR", "00", bootstrap_servers=settings_from_env("publisher-SAMR", bootstrap))
        self.joined: set[str] = set()
        self.opened = False

    def _decision(self, kind: str, **extra: Any) -> dict[str, Any]:
        return {"decision_id": str(uuid.uuid4()), "operation_id": OPERATION, "kind": kind,
                "actor": {"agency": "SAMR", "province": "00", "unit": None}, "decided_at": datetime.now(UTC),
                **extra}

    def start(self) -> None:
        now = datetime.now(UTC)
        pending = [self.publisher.publish_event("cn.leadbus.OperationDecision", self._decision(
            "OPEN", name="2026 化妆品集群战役 (demo)", member_agencies=["MPS", "GACC"], member_provinces=["33", "44"],
            starts_at=now, ends_at=now + timedelta(days=90)))]
        for warning in WARNINGS:
            pending.append(self.publisher.publish_event("cn.leadbus.ConsumerWarning", {
                **warning, "warning_id": str(uuid.uuid4()), "publisher": {"agency": "SAMR", "province": "00"},
                "published_at": now}))
        self.publisher.wait(pending)
        self.opened = True

    def act(self, case_provinces: dict[str, str]) -> None:
        """Join the first few cases of Zhejiang and Guangdong, a handful at a time."""
        if not self.opened or len(self.joined) >= JOINED_AT_MOST:
            return
        fresh = [c for c, p in case_provinces.items() if p in ("33", "44") and c not in self.joined]
        batch = fresh[: min(3, JOINED_AT_MOST - len(self.joined))]
        if batch:
            self.publisher.publish_event("cn.leadbus.OperationDecision", self._decision("JOIN_CASE", case_ids=batch))
            self.joined.update(batch)
        self.publisher.producer.poll(0)

    def close(self) -> None:
        self.publisher.close(0.5)
