"""Publishing agencies and lead categories.

:data:`AGENCIES` holds the *current* agency codes a lead's ``publisher.agency`` may carry: the
bodies that still exist and the successors created by the 2018 State Council reform
(深化党和国家机构改革方案). Codes of abolished bodies (SAIC, CFDA, AQSIQ, …) are never valid;
:data:`ABOLISHED` names their successors so that a rejection can say which code to use.

:data:`CATEGORIES` lists the priority goods and works of 国办发〔2015〕77号 as the enum codes of
``CaseLead.category`` with their Chinese labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class Agency:
    code: str
    name_zh: str
    name_en: str


def _agencies(*rows: tuple[str, str, str]) -> Mapping[str, Agency]:
    return MappingProxyType({row[0]: Agency(*row) for row in rows})


AGENCIES: Final[Mapping[str, Agency]] = _agencies(
    ("SAMR", "国家市场监督管理总局", "State Administration for Market Regulation"),
    ("MPS", "公安部", "Ministry of Public Security"),
    ("GACC", "海关总署", "General Administration of Customs of the People's Republic of China"),
    ("NCAC", "国家版权局", "National Copyright Administration of China"),
    ("CNIPA", "国家知识产权局", "China National Intellectual Property Administration"),
    ("NMPA", "国家药品监督管理局", "National Medical Products Administration"),
    ("CAC", "国家互联网信息办公室", "Cyberspace Administration of China"),
    ("SPB", "国家邮政局", "State Post Bureau"),
    ("MIIT", "工业和信息化部", "Ministry of Industry and Information Technology"),
    ("MARA", "农业农村部", "Ministry of Agriculture and Rural Affairs"),
    ("MCT", "文化和旅游部", "Ministry of Culture and Tourism"),
    ("PBC", "中国人民银行", "People's Bank of China"),
    ("SAT", "国家税务总局", "State Taxation Administration"),
    ("NFGA", "国家林业和草原局", "National Forestry and Grassland Administration"),
    ("SPC", "最高人民法院", "Supreme People's Court"),
    ("SPP", "最高人民检察院", "Supreme People's Procuratorate"),
    ("MOFCOM", "商务部", "Ministry of Commerce"),
    ("NDRC", "国家发展和改革委员会", "National Development and Reform Commission"),
    ("NHC", "国家卫生健康委员会", "National Health Commission"),
    ("NRTA", "国家广播电视总局", "National Radio and Television Administration"),
    ("NPPA", "国家新闻出版署", "National Press and Publication Administration"),
    ("CFA", "国家电影局", "China Film Administration"),
    ("CCPIT", "中国国际贸易促进委员会", "China Council for the Promotion of International Trade"),
    ("CPLAC", "中央政法委员会", "Central Political and Legal Affairs Commission"),
    (
        "NLGIPR_O",
        "全国打击侵权假冒工作领导小组办公室",
        "Office of the National Leading Group on the Fight against IPR Infringement and Counterfeiting",
    ),
)

# Successors in the order a reader should consider them (main functions first).
ABOLISHED: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "SAIC": ("SAMR", "CNIPA"),  # trademark registration went to CNIPA
        "AQSIQ": ("SAMR", "GACC", "CNIPA"),  # entry-exit inspection to GACC, GIs to CNIPA
        "CFDA": ("SAMR", "NMPA"),  # food to SAMR; drugs, devices, cosmetics to NMPA
        "SAPPRFT": ("NRTA", "NPPA", "NCAC", "CFA"),
        "SIPO": ("CNIPA",),
        "MOA": ("MARA",),
        "MOC": ("MCT",),
        "SFA": ("NFGA",),
        "NHFPC": ("NHC",),
        "CCMPS_O": ("CPLAC",),
    }
)

# SIPO was rebuilt (重新组建) as CNIPA rather than dissolved.
_REORGANISED: Final = frozenset({"SIPO"})

# Other spellings seen in the wild; the bus accepts only the canonical code.
ALIASES: Final[Mapping[str, str]] = MappingProxyType({"PBOC": "PBC", "STA": "SAT"})

CATEGORIES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "AGRI_INPUTS": "农资",
        "FOOD": "食品",
        "DRUGS": "药品",
        "COSMETICS": "化妆品",
        "MEDICAL_DEVICES": "医疗器械",
        "ELECTRONICS": "电器电子产品",
        "AUTO_PARTS": "汽车配件",
        "BUILDING_MATERIALS": "装饰装修材料",
        "HAZARDOUS_CHEMICALS": "易制爆危险化学品",
        "CHILDREN_PRODUCTS": "儿童用品",
        "APPAREL_FOOTWEAR": "服装鞋帽",
        "LITERATURE": "网络文学",
        "MUSIC": "音乐",
        "FILM_TV": "影视",
        "GAMES": "游戏",
        "ANIMATION": "动漫",
        "SOFTWARE": "软件",
        "STANDARDS": "标准",
        "PATENTED_PRODUCTS": "专利产品",
        "OTHER": "其他",
    }
)


def is_agency_code(code: str | None) -> bool:
    """True only for a current agency code, spelled exactly (upper case)."""
    return code in AGENCIES


def is_category_code(code: str | None) -> bool:
    return code in CATEGORIES


def agency_code_problem(code: str) -> str | None:
    """None for a current agency code, else a message saying what to use instead."""
    if code in AGENCIES:
        return None
    if code in ABOLISHED:
        successors = " or ".join(ABOLISHED[code])
        if code in _REORGANISED:
            return f"{code} was reorganised in 2018; use {successors}"
        return f"{code} was abolished in 2018; use {successors}"
    if code in ALIASES:
        return f"{code} is not the bus's code; use {ALIASES[code]}"
    if code.upper() in AGENCIES:
        return f"agency codes are upper case; use {code.upper()}"
    return f"unknown agency code {code!r}"
