"""Provinces (GB/T 2260 two-digit codes) and the regional joint-enforcement groups.

A lead names its publisher's province and the suspect's province by the first two digits of the
GB/T 2260 行政区划代码; ``"00"`` (:data:`NATIONAL`) stands for a national-level publisher. Routing
sends a case to every region that contains the reporting or the suspect's province:

* ``jjj``  京津冀 Beijing-Tianjin-Hebei;
* ``yrd``  长三角 Yangtze River Delta, in its current (2019 纲要) extent, Anhui included;
* ``pprd`` 泛珠三角 Pan-Pearl River Delta, "9+2" (国发〔2016〕18号), Chongqing not a member.

Taiwan (71), Hong Kong (81) and Macao (82) have codes but lie outside mainland enforcement
jurisdiction (``Province.mainland`` is false): they are liaison targets, not places to send a case
for 属地查处.

The county codes are a small, real sample (capital districts) for generators of resident ID
numbers and USCCs; they are not a full GB/T 2260 table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

NATIONAL: Final = "00"

RegionCode = Literal["jjj", "yrd", "pprd"]


@dataclass(frozen=True)
class Province:
    code: str
    name_zh: str
    name_en: str
    short_zh: str
    mainland: bool


@dataclass(frozen=True)
class Region:
    code: RegionCode
    name_zh: str
    name_en: str
    members: frozenset[str]


def _provinces(*rows: tuple[str, str, str, str, bool]) -> Mapping[str, Province]:
    return MappingProxyType({row[0]: Province(*row) for row in rows})


PROVINCES: Final[Mapping[str, Province]] = _provinces(
    ("11", "北京市", "Beijing", "京", True),
    ("12", "天津市", "Tianjin", "津", True),
    ("13", "河北省", "Hebei", "冀", True),
    ("14", "山西省", "Shanxi", "晋", True),
    ("15", "内蒙古自治区", "Inner Mongolia", "蒙", True),
    ("21", "辽宁省", "Liaoning", "辽", True),
    ("22", "吉林省", "Jilin", "吉", True),
    ("23", "黑龙江省", "Heilongjiang", "黑", True),
    ("31", "上海市", "Shanghai", "沪", True),
    ("32", "江苏省", "Jiangsu", "苏", True),
    ("33", "浙江省", "Zhejiang", "浙", True),
    ("34", "安徽省", "Anhui", "皖", True),
    ("35", "福建省", "Fujian", "闽", True),
    ("36", "江西省", "Jiangxi", "赣", True),
    ("37", "山东省", "Shandong", "鲁", True),
    ("41", "河南省", "Henan", "豫", True),
    ("42", "湖北省", "Hubei", "鄂", True),
    ("43", "湖南省", "Hunan", "湘", True),
    ("44", "广东省", "Guangdong", "粤", True),
    ("45", "广西壮族自治区", "Guangxi", "桂", True),
    ("46", "海南省", "Hainan", "琼", True),
    ("50", "重庆市", "Chongqing", "渝", True),
    ("51", "四川省", "Sichuan", "川", True),
    ("52", "贵州省", "Guizhou", "黔", True),
    ("53", "云南省", "Yunnan", "滇", True),
    ("54", "西藏自治区", "Tibet (Xizang)", "藏", True),
    ("61", "陕西省", "Shaanxi", "陕", True),
    ("62", "甘肃省", "Gansu", "甘", True),
    ("63", "青海省", "Qinghai", "青", True),
    ("64", "宁夏回族自治区", "Ningxia", "宁", True),
    ("65", "新疆维吾尔自治区", "Xinjiang", "新", True),
    ("71", "台湾省", "Taiwan", "台", False),
    ("81", "香港特别行政区", "Hong Kong", "港", False),
    ("82", "澳门特别行政区", "Macao", "澳", False),
)

REGIONS: Final[Mapping[str, Region]] = MappingProxyType(
    {
        "jjj": Region("jjj", "京津冀", "Beijing-Tianjin-Hebei", frozenset({"11", "12", "13"})),
        "yrd": Region("yrd", "长三角", "Yangtze River Delta", frozenset({"31", "32", "33", "34"})),
        "pprd": Region(
            "pprd",
            "泛珠三角",
            "Pan-Pearl River Delta",
            frozenset({"35", "36", "43", "44", "45", "46", "51", "52", "53", "81", "82"}),
        ),
    }
)

# Residence permits for Taiwan residents (台湾居民居住证, from 2018) carry 830000, not GB/T 2260's
# 710000, so an ID number starting 83 belongs to Taiwan (71).
TAIWAN_RESIDENT_PREFIX: Final = "83"

# (capital prefecture-level code, county-level codes). Municipalities have no prefecture level in
# practice, so their "capital" is a central district; 81/82/83 are the residence-permit codes.
_ADDRESS_CODES: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = MappingProxyType(
    {
        "11": ("110105", ("110101", "110102", "110105", "110106", "110108")),  # 东城 西城 朝阳 丰台 海淀
        "12": ("120101", ("120101", "120102", "120103", "120104", "120116")),  # 和平 … 滨海新区
        "13": ("130100", ("130102", "130104", "130105", "130108")),  # 石家庄 长安 桥西 新华 裕华
        "14": ("140100", ("140105", "140106", "140107", "140109")),  # 太原 小店 迎泽 杏花岭 万柏林
        "15": ("150100", ("150102", "150103", "150104", "150105")),  # 呼和浩特 新城 回民 玉泉 赛罕
        "21": ("210100", ("210102", "210103", "210104", "210105")),  # 沈阳 和平 沈河 大东 皇姑
        "22": ("220100", ("220102", "220103", "220104", "220105")),  # 长春 南关 宽城 朝阳 二道
        "23": ("230100", ("230102", "230103", "230104")),  # 哈尔滨 道里 南岗 道外
        "31": ("310101", ("310101", "310104", "310105", "310106", "310115")),  # 黄浦 徐汇 长宁 静安 浦东
        "32": ("320100", ("320102", "320104", "320105", "320106")),  # 南京 玄武 秦淮 建邺 鼓楼
        "33": ("330100", ("330102", "330105", "330106", "330108")),  # 杭州 上城 拱墅 西湖 滨江
        "34": ("340100", ("340102", "340103", "340104", "340111")),  # 合肥 瑶海 庐阳 蜀山 包河
        "35": ("350100", ("350102", "350103", "350104", "350203", "350206")),  # 福州 鼓楼 台江 仓山; 厦门
        "36": ("360100", ("360102", "360103", "360104", "360111")),  # 南昌 东湖 西湖 青云谱 青山湖
        "37": ("370100", ("370102", "370103", "370104", "370105")),  # 济南 历下 市中 槐荫 天桥
        "41": ("410100", ("410102", "410103", "410104", "410105")),  # 郑州 中原 二七 管城 金水
        "42": ("420100", ("420102", "420103", "420106", "420111")),  # 武汉 江岸 江汉 武昌 洪山
        "43": ("430100", ("430102", "430103", "430104", "430105")),  # 长沙 芙蓉 天心 岳麓 开福
        "44": ("440100", ("440103", "440104", "440105", "440106", "440304", "440305")),  # 广州 …; 深圳
        "45": ("450100", ("450102", "450103", "450105", "450107")),  # 南宁 兴宁 青秀 江南 西乡塘
        "46": ("460100", ("460105", "460106", "460107", "460108")),  # 海口 秀英 龙华 琼山 美兰
        "50": ("500103", ("500103", "500105", "500106", "500108")),  # 渝中 江北 沙坪坝 南岸
        "51": ("510100", ("510104", "510105", "510106", "510107", "510108")),  # 成都 锦江 青羊 金牛 武侯 成华
        "52": ("520100", ("520102", "520103", "520111", "520115")),  # 贵阳 南明 云岩 花溪 观山湖
        "53": ("530100", ("530102", "530103", "530111", "530112")),  # 昆明 五华 盘龙 官渡 西山
        "54": ("540100", ("540102", "540103")),  # 拉萨 城关 堆龙德庆
        "61": ("610100", ("610102", "610103", "610104", "610113")),  # 西安 新城 碑林 莲湖 雁塔
        "62": ("620100", ("620102", "620103", "620104", "620105")),  # 兰州 城关 七里河 西固 安宁
        "63": ("630100", ("630102", "630103", "630104", "630105")),  # 西宁 城东 城中 城西 城北
        "64": ("640100", ("640104", "640105", "640106")),  # 银川 兴庆 西夏 金凤
        "65": ("650100", ("650102", "650103", "650104", "650105")),  # 乌鲁木齐 天山 沙依巴克 新市 水磨沟
        "71": ("830000", ("830000",)),
        "81": ("810000", ("810000",)),
        "82": ("820000", ("820000",)),
    }
)


def is_province_code(code: str | None) -> bool:
    """True for the 34 province-level codes (not for ``"00"``)."""
    return code in PROVINCES


def is_publisher_province(code: str | None) -> bool:
    """True for a province code or ``"00"`` (a national-level publisher)."""
    return code == NATIONAL or is_province_code(code)


def regions_of(*province_codes: str | None) -> frozenset[str]:
    """Codes of every region containing at least one of the given provinces (``None`` ignored)."""
    wanted = {code for code in province_codes if code is not None}
    return frozenset(region.code for region in REGIONS.values() if region.members & wanted)


def province_of_division(code6: str) -> str | None:
    """Province of a 6-digit division code such as an ID number's address part, or None."""
    if len(code6) != 6 or not (code6.isascii() and code6.isdigit()):
        return None
    prefix = code6[:2]
    if prefix == TAIWAN_RESIDENT_PREFIX:
        return "71"
    return prefix if prefix in PROVINCES else None


def _address_codes(province: str) -> tuple[str, tuple[str, ...]]:
    try:
        return _ADDRESS_CODES[province]
    except KeyError:
        raise ValueError(f"not a province code: {province!r}") from None


def capital_prefecture_code(province: str) -> str:
    """A plausible 6-digit GB/T 2260 code for the province's capital (e.g. 440100 Guangzhou)."""
    return _address_codes(province)[0]


def county_codes(province: str) -> tuple[str, ...]:
    """A few real county-level codes of the province, for generating identifiers."""
    return _address_codes(province)[1]
