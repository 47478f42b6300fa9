"""A deterministic generator of realistic case-lead traffic, for demos, benchmarks and tests.

Pure: no Kafka, no clock (``now`` is an argument), every draw from one ``random.Random(seed)``,
so a seed always yields the same leads. Every lead validates as a :class:`CaseLead`.

Suspects are rings (a person, maybe a company, an online shop, a website or app, payment accounts).
A share of leads (``same_suspect_share``) concern a recent suspect again, reported by another
agency and/or province, reusing at least one strong identifier already published about it.
Facts sit around the pre-2025 criminal thresholds (I2001/I2004/I2007/O2011; the 2025
interpretation's values are not extracted): some below, some exactly at, most above.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from leadbus.agencies import AGENCIES, CATEGORIES
from leadbus.geography import NATIONAL, PROVINCES, county_codes, regions_of
from leadbus.identifiers import (
    USCC_CHARSET,
    make_bank_card,
    make_resident_id,
    make_uscc,
    normalize_mobile,
    organization_code_check_char,
)
from leadbus.models import CaseLead

T = TypeVar("T")

# --- tables -------------------------------------------------------------------------------------

SURNAMES = (*"王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩邓冯曹彭曾肖蔡潘袁蒋余叶程魏苏吕丁卢", "欧阳")
GIVEN_CHARS = tuple("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚华建志海燕晓东文斌鹏辉婷欣宇浩俊雪琳鑫凯梓轩子涵嘉怡")
TRADE_NAMES = ("鑫盛", "华锐", "宏达", "恒通", "金鼎", "瑞丰", "佳美", "盛世", "天成", "聚福", "博远", "顺发",
               "安泰", "凯旋", "优品", "尚品", "锦程", "新锐", "利达", "荣昌", "富润", "兴旺", "海纳", "昊天")
COMPANY_SUFFIXES = ("有限公司", "有限公司", "有限责任公司", "商贸行")
SHOP_SUFFIXES = ("旗舰店", "专营店", "官方店", "折扣店", "小店", "工厂店", "精品店")
APP_SUFFIXES = ("影视", "音乐", "小说", "动漫", "游戏盒子", "工具箱")
# Premises shared by many traders (labelled look-alikes: `market_share`).
MARKETS = ("国际商贸城", "小商品批发市场", "服装批发市场", "电子市场", "商贸大厦", "电商产业园")
ROADS = ("人民", "解放", "中山", "建设", "和平", "新华", "胜利", "长江", "工业", "商贸", "科技", "滨江")
CITIES = {
    "11": "北京市", "12": "天津市", "13": "石家庄市 保定市 廊坊市", "14": "太原市 大同市", "15": "呼和浩特市 包头市",
    "21": "沈阳市 大连市", "22": "长春市 吉林市", "23": "哈尔滨市 齐齐哈尔市", "31": "上海市",
    "32": "南京市 苏州市 无锡市 常州市", "33": "杭州市 宁波市 温州市 金华市 台州市", "34": "合肥市 芜湖市",
    "35": "福州市 厦门市 泉州市 莆田市", "36": "南昌市 赣州市", "37": "济南市 青岛市 临沂市", "41": "郑州市 洛阳市",
    "42": "武汉市 宜昌市", "43": "长沙市 株洲市", "44": "广州市 深圳市 东莞市 佛山市 汕头市 揭阳市",
    "45": "南宁市 桂林市", "46": "海口市 三亚市", "50": "重庆市", "51": "成都市 绵阳市", "52": "贵阳市 遵义市",
    "53": "昆明市 曲靖市", "54": "拉萨市", "61": "西安市 咸阳市", "62": "兰州市", "63": "西宁市", "64": "银川市",
    "65": "乌鲁木齐市",
}  # fmt: skip
AREA_CODES = {"北京市": "010", "天津市": "022", "上海市": "021", "重庆市": "023", "广州市": "020", "深圳市": "0755",
              "东莞市": "0769", "杭州市": "0571", "宁波市": "0574", "南京市": "025", "苏州市": "0512", "莆田市": "0594",
              "泉州市": "0595", "厦门市": "0592", "武汉市": "027", "成都市": "028", "西安市": "029"}  # fmt: skip
# Suspects cluster where the counterfeiting and e-commerce industries are; other provinces weigh 1.
PROVINCE_WEIGHTS = {"44": 18, "33": 14, "35": 8, "32": 8, "37": 6, "31": 5, "41": 5, "11": 4, "13": 4, "42": 3,
                    "43": 3, "51": 3, "34": 3, "36": 2, "45": 2, "50": 2, "21": 2, "61": 2}  # fmt: skip
MAINLAND = tuple(code for code, province in PROVINCES.items() if province.mainland)
AGENCY_WEIGHTS = (("SAMR", 30), ("MPS", 14), ("NCAC", 10), ("GACC", 10), ("NMPA", 8), ("CAC", 6), ("CNIPA", 6),
                  ("MARA", 5), ("SPB", 3), ("MCT", 3), ("MIIT", 2), ("NRTA", 2))  # fmt: skip
AGENCY_OFFICES = {"SAMR": "市场监督管理局", "MPS": "公安厅", "NCAC": "版权局", "NMPA": "药品监督管理局",
                  "CAC": "互联网信息办公室", "CNIPA": "知识产权局", "MARA": "农业农村厅", "SPB": "邮政管理局",
                  "MCT": "文化和旅游厅", "MIIT": "通信管理局", "NRTA": "广播电视局"}  # fmt: skip
CUSTOMS = {"44": ("广州海关", "黄埔海关", "深圳海关", "拱北海关", "汕头海关"), "33": ("杭州海关", "宁波海关"),
           "35": ("福州海关", "厦门海关"), "37": ("济南海关", "青岛海关"), "21": ("沈阳海关", "大连海关")}  # fmt: skip
WORKS = ("LITERATURE", "MUSIC", "FILM_TV", "GAMES", "ANIMATION", "SOFTWARE", "STANDARDS")
GOODS = tuple(category for category in CATEGORIES if category not in WORKS)
AGENCY_CATEGORIES: dict[str, tuple[str, ...]] = {
    "SAMR": GOODS, "MPS": GOODS + WORKS, "CAC": GOODS + WORKS, "SPB": GOODS, "NCAC": WORKS,
    "NMPA": ("DRUGS", "DRUGS", "MEDICAL_DEVICES", "COSMETICS"), "MARA": ("AGRI_INPUTS",),
    "CNIPA": ("PATENTED_PRODUCTS", "PATENTED_PRODUCTS", "APPAREL_FOOTWEAR", "ELECTRONICS", "AUTO_PARTS"),
    "GACC": ("APPAREL_FOOTWEAR", "APPAREL_FOOTWEAR", "ELECTRONICS", "COSMETICS", "AUTO_PARTS", "CHILDREN_PRODUCTS",
             "DRUGS", "MEDICAL_DEVICES", "HAZARDOUS_CHEMICALS"),
    "MCT": ("GAMES", "MUSIC", "ANIMATION", "FILM_TV"), "MIIT": ("ELECTRONICS", "SOFTWARE"), "NRTA": ("FILM_TV",),
}  # fmt: skip
CHANNELS: dict[str, tuple[tuple[str, int], ...]] = {
    "GACC": (("SEIZURE", 60), ("CROSS_BORDER", 35), ("REFERRAL", 5)),
    "CAC": (("MONITORING", 60), ("PLATFORM_REPORT", 30), ("COMPLAINT", 10)),
    "MPS": (("REFERRAL", 40), ("INSPECTION", 20), ("COMPLAINT", 20), ("MONITORING", 20)),
    "NCAC": (("MONITORING", 40), ("COMPLAINT", 35), ("PLATFORM_REPORT", 15), ("REFERRAL", 10)),
    "SPB": (("INSPECTION", 70), ("SEIZURE", 30)),
    "*": (("COMPLAINT", 35), ("INSPECTION", 25), ("PLATFORM_REPORT", 20), ("MONITORING", 15), ("REFERRAL", 4),
          ("OTHER", 1)),
}  # fmt: skip
CHANNEL_ZH = {"COMPLAINT": "经群众举报", "INSPECTION": "日常检查中发现", "PLATFORM_REPORT": "电商平台报送",
              "MONITORING": "网络巡查监测发现", "SEIZURE": "现场查获", "CROSS_BORDER": "进出境监管中发现",
              "REFERRAL": "经有关部门移送", "OTHER": "经其他途径发现"}  # fmt: skip
# category -> Criminal Law articles the conduct may amount to (repeats weigh more)
VIOLATIONS = {
    "AGRI_INPUTS": ("ART_147", "ART_147", "ART_140"), "FOOD": ("ART_143", "ART_144", "ART_140"),
    "DRUGS": ("ART_141", "ART_141", "ART_142", "ART_140"), "COSMETICS": ("ART_148", "ART_140", "ART_214"),
    "MEDICAL_DEVICES": ("ART_145", "ART_140"), "ELECTRONICS": ("ART_146", "ART_140", "ART_214"),
    "AUTO_PARTS": ("ART_146", "ART_140", "ART_213"), "BUILDING_MATERIALS": ("ART_146", "ART_140"),
    "HAZARDOUS_CHEMICALS": ("OTHER", "ART_140"), "CHILDREN_PRODUCTS": ("ART_146", "ART_140", "ART_214"),
    "APPAREL_FOOTWEAR": ("ART_213", "ART_214", "ART_214", "ART_215"), "STANDARDS": ("ART_217",),
    "PATENTED_PRODUCTS": ("ART_216",), "OTHER": ("ART_140", "ART_214"),
} | {category: ("ART_217", "ART_217", "ART_218") for category in WORKS[:-1]}  # fmt: skip
VIOLATION_ZH = {"ART_140": "生产、销售伪劣产品", "ART_141": "生产、销售假药", "ART_142": "生产、销售劣药",
                "ART_143": "生产、销售不符合安全标准的食品", "ART_144": "生产、销售有毒、有害食品",
                "ART_145": "生产、销售不符合标准的医用器材", "ART_146": "生产、销售不符合安全标准的产品",
                "ART_147": "生产、销售伪劣农药、兽药、化肥、种子", "ART_148": "生产、销售不符合卫生标准的化妆品",
                "ART_213": "假冒注册商标", "ART_214": "销售假冒注册商标的商品", "ART_215": "非法制造注册商标标识",
                "ART_216": "假冒专利", "ART_217": "侵犯著作权", "ART_218": "销售侵权复制品",
                "OTHER": "违法经营"}  # fmt: skip
# category -> (industry words of company names, products or works)
WORDS = {
    "AGRI_INPUTS": ("农资 生物科技 种业", "复合肥 草甘膦除草剂 杂交水稻种子 兽用疫苗"),
    "FOOD": ("食品 酒业 粮油", "白酒 婴幼儿配方奶粉 食用油 保健食品"),
    "DRUGS": ("医药 药业", "降压药 进口抗癌药 减肥胶囊"), "COSMETICS": ("化妆品 日化", "面霜 口红 美白精华"),
    "MEDICAL_DEVICES": ("医疗器械 医疗科技", "医用口罩 血糖仪 隐形眼镜"),
    "ELECTRONICS": ("电子科技 电器 数码科技", "手机充电器 蓝牙耳机 移动电源"),
    "AUTO_PARTS": ("汽车配件 汽配", "刹车片 机油滤清器 火花塞"),
    "BUILDING_MATERIALS": ("建材 装饰材料", "电线电缆 瓷砖 防水涂料"),
    "HAZARDOUS_CHEMICALS": ("化工", "硝酸铵 高锰酸钾"),
    "CHILDREN_PRODUCTS": ("母婴用品 玩具", "儿童安全座椅 毛绒玩具 婴儿推车"),
    "APPAREL_FOOTWEAR": ("服饰 鞋业 制衣", "运动鞋 箱包 羽绒服"), "LITERATURE": ("文化传媒 网络科技", "网络小说"),
    "MUSIC": ("文化传媒 网络科技", "数字音乐专辑"), "FILM_TV": ("影视文化 网络科技", "院线电影 热播电视剧"),
    "GAMES": ("网络科技 信息技术", "网络游戏私服 单机游戏"), "ANIMATION": ("文化传媒 动漫", "动画番剧 漫画"),
    "SOFTWARE": ("信息技术 软件", "设计软件 办公软件激活码"), "STANDARDS": ("信息咨询", "国家标准文本"),
    "PATENTED_PRODUCTS": ("机械 五金 科技", "扫地机器人 电动牙刷"), "OTHER": ("商贸 贸易 实业", "日用百货 工艺品"),
}  # fmt: skip
# (platform, weight, shop URL, item URL, digits of the shop id)
MARKETPLACES = (
    ("淘宝", 35, "https://shop{id}.taobao.com/", "https://item.taobao.com/item.htm?id={item}", 9),
    ("京东", 20, "https://mall.jd.com/index-{id}.html", "https://item.jd.com/{item}.html", 7),
    ("拼多多", 18, "https://mobile.yangkeduo.com/mall_page.html?mall_id={id}",
     "https://mobile.yangkeduo.com/goods.html?goods_id={item}", 9),
    ("抖音", 12, "https://haohuo.jinritemai.com/views/shop/index?id={id}",
     "https://haohuo.jinritemai.com/views/product/detail?id={item}", 8),
    ("快手", 6, "https://app.kwaixiaodian.com/merchant/shop/detail?id={id}",
     "https://app.kwaixiaodian.com/item/{item}", 9),
    ("闲鱼", 5, "https://www.goofish.com/personal?userId={id}", "https://www.goofish.com/item?id={item}", 10),
    ("微店", 4, "https://weidian.com/?userid={id}", "https://weidian.com/item.html?itemID={item}", 9),
)  # fmt: skip
# independent sites: (host names, paths) of goods shops and of pirate works sites
SITES = {False: (("xx-fashion", "meili-shop", "haohuo", "jingpin", "tianyi-mall"), ("/item/{}", "/goods/{}.html")),
         True: (("kuaikan", "yinyue8", "moviebox", "manhua-free", "yingshi", "soft-down", "xiaoshuo"),
                ("/vod/{}.html", "/book/{}/", "/download/{}", "/play/{}"))}  # fmt: skip
TLDS = (".cn", ".com", ".net", ".top", ".xyz", ".cc")
IP_FIRST_OCTETS = (39, 47, 106, 110, 112, 113, 114, 115, 116, 117, 119, 120, 121, 122, 123, 124, 125, 139, 180, 182,
                   183, 218, 219, 220, 221, 222, 43, 45, 103, 104, 154, 156, 185)  # fmt: skip
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155",
                   "156", "157", "158", "159", "166", "173", "176", "177", "180", "181", "182", "183", "185", "186",
                   "187", "188", "189", "191", "198", "199")  # fmt: skip
CARD_BINS = (("622202", 19), ("622848", 19), ("621700", 19), ("621661", 19), ("622588", 16), ("621483", 16))
COUNTRIES = ("US", "JP", "KR", "DE", "FR", "IT", "GB", "TH", "VN", "MY", "AE", "NG", "BR", "RU", "AU", "HK")
EVIDENCE_KINDS = (("screenshot", "png"), ("purchase_record", "pdf"), ("test_report", "pdf"),
                  ("seizure_photo", "jpg"), ("webpage_archive", "warc"), ("chat_log", "txt"))  # fmt: skip
SUBJECT_KINDS = {"goods": (("ENTERPRISE", 35), ("ONLINE_SHOP", 35), ("INDIVIDUAL", 25), ("WEBSITE", 5)),
                 "works": (("WEBSITE", 35), ("ONLINE_SHOP", 20), ("APP", 15), ("INDIVIDUAL", 15), ("ENTERPRISE", 15))}
# Thresholds (domain-facts `thresholds`, pre-2025 standards): per article, (fact, threshold, threshold with two
# or more trademarks, probability the fact is reported). Money in fen (CNY x 100).
Y = 100
_SALES, _UNSOLD = ("sales_amount_fen", 50_000 * Y, 50_000 * Y, 1.0), ("goods_value_fen", 150_000 * Y, 150_000 * Y, 0.3)
FACT_RULES: dict[str, tuple[tuple[str, int, int, float], ...]] = {
    "ART_140": (_SALES, _UNSOLD), "ART_146": (_SALES, _UNSOLD, ("loss_fen", 100_000 * Y, 100_000 * Y, 0.3)),
    "ART_147": (("loss_fen", 20_000 * Y, 20_000 * Y, 1.0), ("sales_amount_fen", 50_000 * Y, 50_000 * Y, 0.5)),
    "ART_213": (("illegal_business_amount_fen", 50_000 * Y, 30_000 * Y, 1.0),
                ("illegal_gains_fen", 30_000 * Y, 20_000 * Y, 0.5)),
    "ART_214": (_SALES, _UNSOLD),
    "ART_215": (("labels", 20_000, 10_000, 1.0), ("illegal_business_amount_fen", 50_000 * Y, 30_000 * Y, 0.4)),
    "ART_216": (("illegal_business_amount_fen", 200_000 * Y, 200_000 * Y, 1.0),
                ("illegal_gains_fen", 100_000 * Y, 100_000 * Y, 0.4)),
    "ART_217": (("copies", 500, 500, 0.4), ("works", 500, 500, 0.2), ("clicks", 50_000, 50_000, 0.2),
                ("members", 1000, 1000, 0.15), ("illegal_gains_fen", 30_000 * Y, 30_000 * Y, 0.5),
                ("illegal_business_amount_fen", 50_000 * Y, 50_000 * Y, 0.3)),
    "ART_218": (("illegal_gains_fen", 100_000 * Y, 100_000 * Y, 1.0), ("copies", 500, 500, 0.5)),
}  # fmt: skip
FACT_ZH = (("sales_amount_fen", "销售金额", "元"), ("illegal_business_amount_fen", "非法经营数额", "元"),
           ("illegal_gains_fen", "违法所得", "元"), ("loss_fen", "造成损失", "元"),
           ("goods_value_fen", "货值金额", "元"),
           ("copies", "复制品", "份"), ("works", "传播作品", "部"), ("clicks", "实际点击", "次"),
           ("members", "注册会员", "人"), ("labels", "商标标识", "件"))  # fmt: skip


@dataclass
class Suspect:
    """A ring behind leads; ``published`` lists its strong identifiers already seen on the bus."""

    key: int
    category: str
    province: str
    city: str
    detail: str
    person: str
    id_number: str
    mobiles: list[str]
    accounts: list[str]
    company: tuple[str, str] | None = None  # (name, uscc)
    shop: tuple[str, str, str, list[str]] | None = None  # (platform, shop id, shop name, [shop URL, item URL])
    site: tuple[str, list[str], str] | None = None  # (host, ips, app name)
    published: list[tuple[str, str]] = field(default_factory=list)
    reporters: list[tuple[str, str]] = field(default_factory=list)


class TrafficGenerator:
    """Realistic, reproducible `CaseLead` traffic; ``last_suspect`` is the ground-truth suspect of the last lead."""

    def __init__(self, seed: int = 0, same_suspect_share: float = 0.25, invalid_share: float = 0.0,
                 market_share: float = 0.0) -> None:
        if not 0.0 <= same_suspect_share <= 1.0:
            raise ValueError("same_suspect_share must be within [0, 1]")
        self.seed = seed
        self.same_suspect_share = same_suspect_share
        self.invalid_share = invalid_share  # reserved: lead() always returns a valid lead
        self.last_suspect = -1
        self.last_suspect_obj: Suspect | None = None
        self.market_share = market_share  # suspects trading from a wholesale market or a shared office building
        self._market_rng = random.Random(f"markets:{seed}")
        self._rng = random.Random(seed)
        self._pool: deque[Suspect] = deque(maxlen=500)  # recent suspects
        self._next_key = 0

    def leads(self, n: int, start: datetime, step: timedelta) -> Iterator[CaseLead]:
        for index in range(n):
            yield self.lead(start + index * step)

    def lead(self, now: datetime) -> CaseLead:
        """The next lead, reported at ``now`` (time-zone aware; truncated to milliseconds)."""
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        rng = self._rng
        now = now.astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        lead_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        repeat = bool(self._pool) and rng.random() < self.same_suspect_share
        suspect = rng.choice(self._pool) if repeat else self._new_suspect(now)
        if not repeat:
            self._pool.append(suspect)
        self.last_suspect = suspect.key
        self.last_suspect_obj = suspect
        return self.lead_about(suspect, now, lead_id, repeat)

    def lead_about(self, suspect: Suspect, now: datetime, lead_id: str, repeat: bool) -> CaseLead:
        """A lead about ``suspect`` (used by `lead`, and by the labelled generator for a suspect's other guise)."""
        rng = self._rng
        agency, province = self._publisher(suspect)
        data = self._body(suspect, agency, province, lead_id, now)
        strong = _strong(data)
        if repeat and not set(strong) & set(suspect.published):
            _add_identifier(data, rng.choice(suspect.published), suspect)
        elif not strong:  # e.g. a website's ICP filing names its operator, or it lists a contact phone
            item = ("uscc", suspect.company[1]) if suspect.company else ("phone", suspect.mobiles[0])
            _add_identifier(data, item, suspect)
        suspect.published.extend(item for item in dict.fromkeys(_strong(data)) if item not in suspect.published)
        suspect.reporters.append((agency, province))
        return CaseLead.model_validate(data, context={"now": now})

    # -- suspects ----------------------------------------------------------------------------

    def _new_suspect(self, now: datetime) -> Suspect:
        rng = self._rng
        category = rng.choice(AGENCY_CATEGORIES[_weighted(rng, AGENCY_WEIGHTS)])
        works, industry = category in WORKS, WORDS[category][0].split()
        province = rng.choices(MAINLAND, [PROVINCE_WEIGHTS.get(code, 1) for code in MAINLAND])[0]
        city = rng.choice(CITIES[province].split())
        birth = date(now.year - rng.randint(20, 62), rng.randint(1, 12), rng.randint(1, 28))
        detail = f"{rng.choice(ROADS)}路{rng.randint(1, 999)}号"
        suspect = Suspect(
            key=self._next_key, category=category, province=province, city=city,
            detail=detail + (f"{rng.randint(1, 30)}栋{rng.randint(101, 2808)}室" if rng.random() < 0.5 else ""),
            person=rng.choice(SURNAMES) + "".join(rng.choices(GIVEN_CHARS, k=rng.choice((1, 2, 2)))),
            id_number=make_resident_id(rng.choice(county_codes(province)), birth, rng.randrange(1000)),
            mobiles=[_digits(rng, rng.choice(MOBILE_PREFIXES), 8) for _ in range(rng.choice((1, 1, 2)))],
            accounts=[self._account() for _ in range(rng.choice((1, 1, 2, 3)))],
        )  # fmt: skip
        self._next_key += 1
        if self.market_share and self._market_rng.random() < self.market_share:
            mrng = self._market_rng
            place = city.removesuffix("市") + mrng.choice(MARKETS)
            suspect.detail = f"{place}{mrng.choice('ABCDEFGH')}区{mrng.randint(1, 6)}楼{mrng.randint(1, 3999)}号"
        trade = rng.choice(TRADE_NAMES)
        if rng.random() < (0.4 if works else 0.7):
            suffix = rng.choice(COMPANY_SUFFIXES)
            name = f"{city.removesuffix('市')}{trade}{rng.choice(industry)}{suffix}"
            suspect.company = (name, self._uscc(province, individual=suffix == "商贸行"))
        if rng.random() < (0.3 if works else 0.75):
            platform, _, shop_url, item_url, digits = rng.choices(MARKETPLACES, [m[1] for m in MARKETPLACES])[0]
            shop_id = str(rng.randrange(10 ** (digits - 1), 10**digits))
            urls = [shop_url.format(id=shop_id), item_url.format(item=rng.randrange(10**10, 10**12))]
            suspect.shop = (platform, shop_id, trade + rng.choice(industry)[:2] + rng.choice(SHOP_SUFFIXES), urls)
        if works or rng.random() < 0.15:
            # A registrable domain has one registrant: draw from a space wide enough never to repeat.
            tag = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(3))
            host = f"www.{rng.choice(SITES[works][0])}-{tag}{rng.randint(10, 99999)}{rng.choice(TLDS)}"
            suspect.site = (host, [self._ip() for _ in range(rng.choice((1, 1, 2)))], trade + rng.choice(APP_SUFFIXES))
        return suspect

    def _account(self) -> str:
        rng = self._rng
        if rng.random() < 0.75:
            prefix, length = rng.choice(CARD_BINS)
            return make_bank_card(prefix, length, _digits(rng, "", length - len(prefix) - 1))
        return rng.choice(("alipay:", "wxpay:wxid_")) + _digits(rng, "", 10)

    def _uscc(self, province: str, individual: bool) -> str:
        rng = self._rng
        first8 = ("MA" if rng.random() < 0.6 else "") + "".join(rng.choices(USCC_CHARSET, k=8))
        org_code = first8[:8] + organization_code_check_char(first8[:8])
        return make_uscc("92" if individual else "91", rng.choice(county_codes(province)), org_code)

    def _ip(self) -> str:
        rng = self._rng
        if rng.random() < 0.1:
            return f"240e:{rng.randrange(0x100, 0x1000):x}:{rng.randrange(0x10000):x}::{rng.randrange(1, 0x10000):x}"
        return f"{rng.choice(IP_FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    # -- leads -------------------------------------------------------------------------------

    def _publisher(self, suspect: Suspect) -> tuple[str, str]:
        """An agency handling the category, in the suspect's province, another one or national; a new reporter."""
        rng = self._rng
        choice = ("MPS", NATIONAL)
        for _ in range(30):
            agency = _weighted(rng, AGENCY_WEIGHTS)
            if suspect.category in AGENCY_CATEGORIES[agency]:
                roll = rng.random()
                province = suspect.province if roll < 0.55 else NATIONAL if roll < 0.63 else rng.choice(MAINLAND)
                choice = (agency, province)
                if choice not in suspect.reporters:
                    break
        return choice

    def _body(self, s: Suspect, agency: str, province: str, lead_id: str, now: datetime) -> dict[str, Any]:
        rng = self._rng
        works = s.category in WORKS
        kinds = [(kind, w) for kind, w in SUBJECT_KINDS["works" if works else "goods"] if _has_facet(s, kind)]
        kind = _weighted(rng, kinds)
        subject: dict[str, Any] = {"name": s.person, "kind": kind, "phones": []}
        online: dict[str, Any] = {"urls": [], "ips": []}
        address = {"province": s.province, "city": s.city, "detail": s.detail}
        if kind == "ENTERPRISE" and s.company:
            subject |= {"name": s.company[0], "uscc": s.company[1] if rng.random() < 0.95 else None, "address": address}
            if s.city in AREA_CODES and rng.random() < 0.4:
                subject["phones"].append(f"{AREA_CODES[s.city]}-{_digits(rng, str(rng.randint(2, 8)), 7)}")
        elif kind == "INDIVIDUAL":
            subject |= {"id_number": s.id_number if rng.random() < 0.8 else None}
            subject["address"] = address if rng.random() < 0.7 else None
        elif kind in ("WEBSITE", "APP") and s.site:
            subject["name"] = s.site[0].removeprefix("www.") if kind == "WEBSITE" else s.site[2]
        if s.shop and (kind == "ONLINE_SHOP" or rng.random() < 0.3):
            online |= {"platform": s.shop[0], "shop_id": s.shop[1], "urls": s.shop[3][: rng.randint(1, 2)]}
            subject["name"] = s.shop[2] if kind == "ONLINE_SHOP" else subject["name"]
        if s.site and (kind in ("WEBSITE", "APP") or rng.random() < 0.3):
            online["urls"].append(f"https://{s.site[0]}" + rng.choice(SITES[works][1]).format(rng.randint(1, 99999)))
            online["ips"] = list(s.site[1]) if rng.random() < 0.7 else []
        if s.company and kind != "ENTERPRISE" and rng.random() < 0.25:
            subject["uscc"] = s.company[1]  # the operator named on the shop or site
        if rng.random() < (0.7 if kind == "INDIVIDUAL" else 0.35):
            mobiles = rng.sample(s.mobiles, rng.randint(1, len(s.mobiles)))
            subject["phones"] += [_format_mobile(rng, mobile) for mobile in mobiles]
        accounts = rng.sample(s.accounts, rng.randint(1, len(s.accounts))) if rng.random() < 0.45 else []
        channel = _weighted(rng, CHANNELS.get(agency, CHANNELS["*"]))
        cross_border = agency == "GACC" or channel == "CROSS_BORDER" or rng.random() < 0.03
        violation = rng.choice(VIOLATIONS[s.category])
        facts = self._facts(violation)
        handling = rng.choices(("OPEN", "RESTRICTED", "CONFIDENTIAL"), (80, 15, 5))[0]
        share_with = sorted({agency, "MPS"} | (set(rng.sample(sorted(regions_of(s.province)) or ["SPP"], 1))
                                               if handling == "RESTRICTED" else set())) if handling != "OPEN" else []
        folder = f"s3://leadbus-evidence/{agency.lower()}/{now:%Y/%m}/{lead_id}"
        evidence = [{"kind": kind_, "uri": f"{folder}/{i}.{ext}", "sha256": f"{rng.getrandbits(256):064x}"}
                    for i, (kind_, ext) in enumerate(rng.sample(EVIDENCE_KINDS, rng.randint(0, 3)))]  # fmt: skip
        parcels = 0 if works or rng.random() < 0.6 else rng.randint(1, 4)
        waybills = [_waybill(rng, cross_border) for _ in range(parcels)]
        return {
            "lead_id": lead_id, "revision": 0, "reported_at": now,
            "publisher": {"agency": agency, "province": province, "unit": _unit(rng, agency, province)},
            "channel": channel, "category": s.category, "violation": violation, "subject": subject, "online": online,
            "payment_accounts": [_format_account(rng, account) for account in accounts], "waybills": waybills,
            "facts": facts, "cross_border": cross_border,
            "countries": sorted(rng.sample(COUNTRIES, rng.randint(1, 2))) if cross_border else [],
            "rights_holder": self._rights_holder(violation, s.category), "handling": handling, "share_with": share_with,
            "grading": {"source": rng.choices("ABCX", (20, 45, 30, 5))[0],
                        "accuracy": rng.choices((1, 2, 3, 4), (20, 40, 30, 10))[0]},
            "description": self._description(s, subject["name"], channel, violation, facts), "evidence": evidence,
        }  # fmt: skip

    def _description(self, s: Suspect, name: str, channel: str, violation: str, facts: dict[str, int]) -> str:
        rng, works = self._rng, s.category in WORKS
        product = rng.choice(WORDS[s.category][1].split())
        verb = rng.choice(("生产、销售", "销售", "仓储、销售")) + rng.choice(("假冒", ""))
        verb = "未经许可通过网络传播" if works else verb
        key, label, unit = next(row for row in FACT_ZH if row[0] in facts)
        amount = f"{facts[key] // Y}.{facts[key] % Y:02d}" if unit == "元" else str(facts[key])
        return (f"{CHANNEL_ZH[channel]}：{name}（{s.city}）涉嫌{VIOLATION_ZH[violation]}，{verb}{product}，"
                f"{label}{amount}{unit}。类别：{CATEGORIES[s.category]}。")

    def _around(self, threshold: int) -> int:
        """Some below, some exactly at, most above the threshold."""
        rng = self._rng
        mode = rng.choices(("below", "at", "above"), (35, 10, 55))[0]
        if mode == "at":
            return threshold
        if mode == "below":
            return rng.randint(max(1, threshold // 10), threshold - 1)
        return rng.randint(threshold + 1, threshold * 8)

    def _facts(self, violation: str) -> dict[str, int]:
        rng = self._rng
        marks = rng.choice((1, 1, 1, 2, 3))
        rules = FACT_RULES.get(violation, (_SALES, _UNSOLD))
        facts = {name: self._around(one if marks == 1 else two) for name, one, two, p in rules if rng.random() < p}
        if not facts:
            name, one, two, _ = rules[0]
            facts[name] = self._around(one if marks == 1 else two)
        if violation in ("ART_213", "ART_214", "ART_215"):
            facts["trademark_kinds"] = marks
        return facts

    def _rights_holder(self, violation: str, category: str) -> dict[str, str] | None:
        rng = self._rng
        name = f"{rng.choice(TRADE_NAMES)}{rng.choice(WORDS[category][0].split())}股份有限公司"
        if violation in ("ART_213", "ART_214", "ART_215"):
            return {"name": name, "registration": f"第{rng.randrange(10**6, 7 * 10**7)}号"}  # trademark
        if violation == "ART_216":
            return {"name": name, "registration": _patent_number(rng)}
        if violation in ("ART_217", "ART_218") and rng.random() < 0.7:
            if category == "SOFTWARE":
                return {"name": name, "registration": f"软著登字第{rng.randrange(10**6, 10**7)}号"}
            year, kind = rng.randint(2015, 2024), rng.choice("AFLIJ")
            return {"name": name, "registration": f"国作登字-{year}-{kind}-{rng.randrange(10**8):08d}"}
        return None


# --- helpers ------------------------------------------------------------------------------------


def _weighted(rng: random.Random, pairs: Sequence[tuple[T, int]]) -> T:
    return rng.choices([pair[0] for pair in pairs], [pair[1] for pair in pairs])[0]


def _digits(rng: random.Random, prefix: str, count: int) -> str:
    return prefix + "".join(rng.choices("0123456789", k=count))


def _format_mobile(rng: random.Random, mobile: str) -> str:
    roll = rng.random()
    if roll < 0.1:
        return f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}"
    return f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}" if roll < 0.15 else mobile


def _format_account(rng: random.Random, account: str) -> str:
    if account[0].isdigit() and rng.random() < 0.15:
        return " ".join(account[i : i + 4] for i in range(0, len(account), 4))
    return account


def _waybill(rng: random.Random, cross_border: bool) -> str:
    if cross_border and rng.random() < 0.5:  # EMS, UPU S10 with its MOD 11 check digit
        serial = _digits(rng, "", 8)
        check = 11 - sum(int(d) * w for d, w in zip(serial, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)) % 11
        return f"E{rng.choice('ABCDEMV')}{serial}{ {10: 0, 11: 5}.get(check, check)}CN"
    carrier = rng.choices(("SF", "YT", "ZTO", "JDVA"), (35, 30, 25, 10))[0]
    if carrier == "ZTO":
        return _digits(rng, rng.choice(("75", "78")), 12)
    return _digits(rng, carrier, 11 if carrier == "JDVA" else 13)


def _patent_number(rng: random.Random) -> str:
    """ZL + a 12-digit CN application number + its MOD 11 check character."""
    digits = f"{rng.randint(2015, 2023)}{rng.choice('128')}{rng.randrange(10**7):07d}"
    check = sum(int(d) * w for d, w in zip(digits, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True)) % 11
    return f"ZL{digits}.{'X' if check == 10 else check}"


def _unit(rng: random.Random, agency: str, province: str) -> str:
    if province == NATIONAL:
        return AGENCIES[agency].name_zh
    if agency == "GACC":
        return rng.choice(CUSTOMS.get(province, (CITIES[province].split()[0].removesuffix("市") + "海关",)))
    office = AGENCY_OFFICES[agency]
    if province in ("11", "12", "31", "50"):  # municipalities have 局, not 厅
        office = office.replace("厅", "局")
    return PROVINCES[province].name_zh + office


def _has_facet(s: Suspect, kind: str) -> bool:
    facets = {"ENTERPRISE": s.company, "ONLINE_SHOP": s.shop, "WEBSITE": s.site, "APP": s.site}
    return facets.get(kind, True) is not None


def _strong(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The strong identifiers of a lead under construction, in canonical form."""
    subject, online = data["subject"], data["online"]
    found = [("uscc", subject["uscc"])] if subject.get("uscc") else []
    found += [("id", subject["id_number"])] if subject.get("id_number") else []
    found += [("phone", normalize_mobile(phone)) for phone in subject["phones"] if not phone.startswith("0")]
    found += [("account", account.replace(" ", "")) for account in data["payment_accounts"]]
    if online.get("shop_id"):
        found.append(("shop", f"{online['platform']}:{online['shop_id']}"))
    return found


def _add_identifier(data: dict[str, Any], item: tuple[str, str], suspect: Suspect) -> None:
    kind, value = item
    if kind in ("uscc", "id"):
        data["subject"]["uscc" if kind == "uscc" else "id_number"] = value
    elif kind == "phone":
        data["subject"]["phones"].append(value.removeprefix("+86"))
    elif kind == "account":
        data["payment_accounts"].append(value)
    elif suspect.shop:
        online = data["online"]
        platform, shop_id, _, urls = suspect.shop
        online |= {"platform": platform, "shop_id": shop_id, "urls": [urls[0], *online["urls"]]}
