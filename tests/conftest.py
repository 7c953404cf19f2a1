"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the repo, or a skip explaining its absence."""
    if not SHARED.is_dir():
        pytest.skip(f"needs ../shared beside the repo (looked for {SHARED}); CI always has it")
    return SHARED


# Tiny self-written articles, four per label, for training and prediction tests.
TOY_ARTICLES = [
    ("governance", "市政府常务会议研究部署营商环境优化工作", "会议审议通过了优化营商环境若干措施，要求各部门深化放管服改革，推进一网通办。"),
    ("governance", "市纪委监委通报三起违反中央八项规定精神问题", "通报指出，有关人员违规收受礼品礼金，已给予党纪政务处分。"),
    ("governance", "区人大常委会开展食品安全法执法检查", "检查组听取政府工作汇报，要求依法履职，推进基层治理现代化。"),
    ("governance", "社区网格员上门收集居民诉求", "街道推行网格化管理，十二三四五热线接诉即办，居民反映的问题限时办结。"),
    ("party_building", "市委组织部举办年轻干部培训班", "培训班围绕干部队伍建设开展党性教育，学员表示要做合格党员。"),
    ("party_building", "村党支部书记带领党员开展志愿服务", "党支部组织党员先锋队走访困难群众，发挥基层党组织战斗堡垒作用。"),
    ("party_building", "机关党委召开主题教育专题组织生活会", "党员干部开展批评与自我批评，深入学习党的创新理论。"),
    ("party_building", "两新组织党建工作推进会召开", "会议要求非公企业和社会组织扩大党的组织覆盖，党建引领发展。"),
    ("safety", "市应急管理局开展安全生产隐患排查", "检查组深入化工企业，排查危险化学品储存隐患，督促限期整改。"),
    ("safety", "消防救援支队成功处置一起居民楼火灾", "消防员迅速疏散群众，扑灭明火，无人员伤亡，提醒市民注意用电安全。"),
    ("safety", "防汛抗旱指挥部部署防汛工作", "各地加强值班值守，转移低洼地区群众，做好山洪地质灾害防范。"),
    ("safety", "交警部门开展道路交通安全整治", "针对酒驾超速等违法行为集中整治，减少交通事故发生。"),
    ("culture", "市博物馆推出青铜器文物特展", "展览汇集馆藏文物两百余件，讲述古代文明与文化遗产保护故事。"),
    ("culture", "非物质文化遗产展演活动在古城举行", "剪纸、皮影、豫剧等非遗项目轮番登场，吸引市民游客观看。"),
    ("culture", "全民阅读月启动 图书馆延长开放时间", "市图书馆举办读书分享会和诗歌朗诵，推动书香城市建设。"),
    ("culture", "原创话剧在大剧院首演", "该剧以本地红色文化为题材，演员阵容强大，观众反响热烈。"),
    ("other", "一季度全市规模以上工业增加值增长百分之六", "装备制造、新材料等产业增势良好，外贸进出口总额稳步提升。"),
    ("other", "小麦进入灌浆期 农技人员指导田间管理", "农业部门组织专家下田指导，确保夏粮丰收，农民增收。"),
    ("other", "市第一人民医院开通远程会诊中心", "患者在县医院即可获得省级专家诊疗，医疗服务更加便捷。"),
    ("other", "全市中学生田径运动会开幕", "来自各校的运动员参加短跑跳远等比赛项目，展现青春风采。"),
]


@pytest.fixture(scope="session")
def toy_rows() -> list[dict]:
    """The toy articles as loader-style records (id, title, text, date, source, label)."""
    return [
        {"id": f"toy-{i:02d}", "title": t, "text": x, "date": f"2024-0{1 + i % 9}-1{i % 10}", "source": "toy",
         "page": "", "section": "", "label": lab}
        for i, (lab, t, x) in enumerate(TOY_ARTICLES)
    ]


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory, toy_rows):
    """A 2-layer random BERT whose vocabulary is the toy articles' characters (built by newsclf.backbones)."""
    import os

    from newsclf.backbones import resolve

    os.environ.setdefault("NEWSCLF_CACHE", str(tmp_path_factory.mktemp("cache")))
    return resolve("tiny", texts=[r["title"] + r["text"] for r in toy_rows])


@pytest.fixture(scope="session")
def toy_dataset_dir(tmp_path_factory, toy_rows):
    """The toy articles saved as a DatasetDict (train: all 20; validation/test: even/odd halves)."""
    from datasets import Dataset, DatasetDict

    rows = [{**r, "label_source": "gold:input", "group": i} for i, r in enumerate(toy_rows)]
    ds = Dataset.from_list(rows)
    path = tmp_path_factory.mktemp("toyds") / "dataset"
    DatasetDict({"train": ds, "validation": ds.select(range(0, 20, 2)), "test": ds.select(range(1, 20, 2))}).save_to_disk(
        str(path)
    )
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, toy_dataset_dir, tiny_backbone):
    """A tiny model folder trained for a few steps on the toy articles (its labels mean nothing)."""
    from newsclf.config import load_config
    from newsclf.train import train

    out = tmp_path_factory.mktemp("tinyruns")
    cfg = load_config("tiny", {"dataset_dir": str(toy_dataset_dir), "output_dir": str(out), "max_steps": 4, "eval_steps": 2})
    return train(cfg, progress=False)
