"""The Ray engine (``newsclf predict --engine ray``) on a local Ray cluster: the local engine's output, byte for byte.

Skipped, with the reason, when Ray is not installed (``pip install 'newsclf[ray]'``); the install hint itself
is tested either way. The cluster is local (``ray.init(num_cpus=2)``) and listens on loopback only.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from newsclf.cli import main
from newsclf.tagging import tag_file

# A local Ray instance binds every interface unless this is set before ray is first imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Ray Data warns about its own deprecated settings whenever it copies its context.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

N = 500
MALFORMED = {123: '{"id": "broken-1", "title": "缺了引号, "text": "x"}', 456: '{"id": "broken-2", "title": '}
TEMPLATES = [
    ("{city}市政府召开常务会议研究{topic}工作", "会议审议通过了{topic}若干措施，要求各部门深化改革，第{n}项任务限期完成。"),
    ("{city}消防救援支队处置一起居民楼火灾", "消防员迅速疏散群众{n}人，扑灭明火，提醒市民注意{topic}安全。"),
    ("{city}博物馆推出青铜器文物特展", "展览汇集馆藏文物{n}件，讲述古代文明与{topic}保护的故事。"),
    ("{city}村党支部带领党员开展志愿服务", "党支部组织{n}名党员走访困难群众，围绕{topic}发挥基层党组织作用。"),
    ("{city}一季度规模以上工业增加值增长", "装备制造和新材料产业增势良好，{topic}相关投资增长百分之{n}。"),
]
CITIES = ["郑州", "洛阳", "开封", "南阳", "新乡", "安阳", "许昌"]
TOPICS = ["营商环境", "用电", "文化遗产", "乡村振兴", "科技创新", "防汛"]


def _ray():
    return pytest.importorskip("ray", reason="Ray is not installed (pip install 'newsclf[ray]'); the Ray engine "
                                             "tests need it")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local two-CPU Ray cluster for this module (loopback only, no dashboard)."""
    ray = _ray()
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'newsclf[ray]')")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def _lines() -> list[str]:
    lines = []
    for i in range(N):
        if i in MALFORMED:
            lines.append(MALFORMED[i])
        elif i == 200:
            lines.append(json.dumps({"id": "empty", "title": "", "text": "  "}))
        elif i == 300:
            lines.append(json.dumps({"id": "english", "title": "Council meets", "text": "The city council met today."}))
        else:
            title, text = TEMPLATES[i % len(TEMPLATES)]
            fill = {"city": CITIES[i % len(CITIES)], "topic": TOPICS[i % len(TOPICS)], "n": i}
            rec = {"title": title.format(**fill), "text": text.format(**fill)}
            if i % 7:  # some records without an id get the reader's file:line id
                rec = {"id": f"art-{i:04d}", **rec}
            lines.append(json.dumps(rec, ensure_ascii=False))
    return lines


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "archive.jsonl"
    path.write_text("\n".join(_lines()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def local_output(archive, tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "tags.jsonl"
    tag_file([str(archive)], str(out), model=tiny_model, progress=False)
    return out


def test_same_lines_as_the_local_engine(ray_cluster, archive, local_output, tiny_model, tmp_path):
    from newsclf.engines.ray_engine import tag_with_ray

    out = tmp_path / "ray.jsonl"
    report = tag_with_ray([str(archive)], str(out), model=tiny_model, batch_size=32, progress=False)
    assert out.read_bytes() == local_output.read_bytes()
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == N == report.written
    assert report.errors == 3 and report.abstained == sum(bool(r.get("abstained")) for r in rows) >= 1
    assert not (tmp_path / "ray.jsonl.partial").exists()
    # Input order, error rows where the broken lines were, the reader's ids for records without one.
    for i, msg in ((123, "line 124: malformed JSON"), (456, "line 457: malformed JSON"),
                   (200, "line 201: the article's title and text are both empty")):
        assert set(rows[i]) == {"id", "error"} and msg in rows[i]["error"] and "archive.jsonl" in rows[i]["error"]
    assert rows[0]["id"] == "archive:1" and rows[1]["id"] == "art-0001"
    assert rows[300]["id"] == "english" and rows[300]["abstained"] and "Chinese" in rows[300]["reason"]


def test_cli_engine_ray_writes_the_local_output(ray_cluster, archive, local_output, tiny_model, tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    rc = main(["predict", str(archive), "--out", str(out), "--model", str(tiny_model), "--engine", "ray", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert out.read_bytes() == local_output.read_bytes()
    assert f"{N} articles written -> {out}, 3 with an error field" in err


def test_parquet_in_and_out(ray_cluster, archive, tiny_model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from newsclf.engines import output_row
    from newsclf.engines.ray_engine import tag_with_ray

    good = [json.loads(line) for i, line in enumerate(_lines()) if i not in MALFORMED][:150]
    good.insert(40, {"id": "blank", "title": None, "text": None})  # empty cells: an error row
    src = tmp_path / "arts.parquet"
    pq.write_table(pa.Table.from_pylist(good), src)
    local = tmp_path / "local.jsonl"
    tag_file([str(src)], str(local), model=tiny_model, progress=False)
    out = tmp_path / "tags.parquet"
    report = tag_with_ray([str(src)], str(out), model=tiny_model, progress=False)
    table = pq.read_table(out)
    assert table.num_rows == len(good) == report.written
    assert [output_row(r) for r in table.to_pylist()] == [
        json.loads(line) for line in local.read_text(encoding="utf-8").splitlines()
    ]


def test_missing_model_fails_before_workers_with_the_local_message(ray_cluster, archive, tmp_path):
    from newsclf.engines.ray_engine import tag_with_ray

    missing = tmp_path / "no-model"
    with pytest.raises(FileNotFoundError) as local:
        tag_file([str(archive)], str(tmp_path / "a.jsonl"), model=missing, progress=False)
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError) as on_ray:
        tag_with_ray([str(archive)], str(tmp_path / "b.jsonl"), model=missing, progress=False)
    assert str(on_ray.value) == str(local.value) and f"no model folder at {missing}" in str(on_ray.value)
    assert time.perf_counter() - t0 < 2  # checked on the driver: no dataset ran
    assert not list(tmp_path.glob("b.jsonl*"))


def test_unreadable_input_shard(ray_cluster, archive, tiny_model, tmp_path):
    from newsclf.engines.ray_engine import RayTaggingError, tag_with_ray

    data = gzip.compress(archive.read_bytes())
    shard = tmp_path / "part-2.jsonl.gz"
    shard.write_bytes(data[: len(data) // 2])  # truncated download
    out = tmp_path / "tags.jsonl"
    with pytest.raises(RayTaggingError) as err:
        tag_with_ray([str(archive), str(shard)], str(out), model=tiny_model, progress=False)
    msg = str(err.value)
    assert f"input {shard.resolve()} could not be read on a Ray worker" in msg
    assert "broken or truncated gzip data" in msg and "no output was written" in msg
    assert not list(tmp_path.glob("tags.jsonl*"))


def test_more_cpus_than_the_cluster_has(ray_cluster, archive, tiny_model, tmp_path):
    from newsclf.engines.ray_engine import tag_with_ray

    for kwargs in ({"num_cpus": 3}, {"cpus_per_worker": 4}):
        with pytest.raises(ValueError, match="the Ray cluster has 2 CPUs"):
            tag_with_ray([str(archive)], str(tmp_path / "o.jsonl"), model=tiny_model, progress=False, **kwargs)
    assert not list(tmp_path.glob("o.jsonl*"))


def test_cli_refusals(archive, tiny_model, tmp_path, capsys):
    args = ["predict", str(archive), "--model", str(tiny_model), "--engine", "ray", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "o.jsonl"), "--resume"]) == 2
    assert "--resume works with --engine local only" in capsys.readouterr().err
    assert main(["predict", "-", "--model", str(tiny_model), "--engine", "ray", "--quiet"]) == 2
    assert "cannot read standard input" in capsys.readouterr().err


def test_without_ray_the_error_says_how_to_install(monkeypatch, tiny_model, archive, tmp_path, capsys):
    from newsclf.engines.ray_engine import tag_with_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'newsclf\[ray\]'"):
        tag_with_ray([str(archive)], str(tmp_path / "o.jsonl"), model=tiny_model, progress=False)
    rc = main(["predict", str(archive), "--out", str(tmp_path / "o.jsonl"), "--model", str(tiny_model),
               "--engine", "ray", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: " in err and "pip install 'newsclf[ray]'" in err and "Traceback" not in err


def test_model_missing_on_workers(ray_cluster, archive, tmp_path, monkeypatch, capsys):
    from newsclf import artifact

    # A model folder the driver sees but the workers do not: here, the driver's check is told it is there.
    monkeypatch.setattr(artifact, "read_meta", lambda path: None)
    elsewhere = tmp_path / "on-the-driver-only"
    out = tmp_path / "tags.jsonl"
    rc = main(["predict", str(archive), "--out", str(out), "--model", str(elsewhere), "--engine", "ray", "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "could not be loaded on a Ray worker (node " in lines[0] and f"no model folder at {elsewhere}" in lines[0]
    assert f"every worker needs the model folder at {elsewhere}" in lines[0]
    assert not list(tmp_path.glob("tags.jsonl*"))


# ---------------------------------------------------------------- Spark: the same batch function under mapInPandas


@pytest.fixture(scope="module")
def spark():
    """A local two-core Spark session bound to loopback (skipped without pyspark or a Java runtime)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed; the Spark mapInPandas test needs it")
    if not shutil.which("java"):
        pytest.skip("no Java runtime (java) on PATH; Spark needs one (Debian: openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    saved = {k: os.environ.get(k) for k in ("SPARK_LOCAL_IP", "PYSPARK_PYTHON")}
    os.environ.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("newsclf-test").config("spark.ui.enabled", "false")
               .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_map_in_pandas_gives_the_local_rows(spark, archive, local_output, tiny_model):
    import pandas as pd

    from newsclf.engines import INPUT_COLUMNS, SPARK_SCHEMA, output_row, spark_tagger
    from newsclf.tagging import iter_articles

    # Articles as newsclf's reader gives them (error rows included), tagged in Spark partitions.
    articles = pd.DataFrame([{k: a.get(k) for k in INPUT_COLUMNS} for a in iter_articles(str(archive))])
    df = spark.createDataFrame(articles, schema=", ".join(f"{c} string" for c in INPUT_COLUMNS)).repartition(1)
    got = df.mapInPandas(spark_tagger(tiny_model), SPARK_SCHEMA).collect()
    local = [json.loads(line) for line in local_output.read_text(encoding="utf-8").splitlines()]
    assert [output_row(r.asDict()) for r in got] == local


def test_tag_pandas_names_missing_columns(tiny_model):
    import pandas as pd

    from newsclf.engines import tag_pandas

    with pytest.raises(ValueError, match=r"expected columns 'id' and 'title' and/or 'text', found \['body'\]"):
        tag_pandas(pd.DataFrame({"body": ["x"]}), tiny_model)
    out = tag_pandas(pd.DataFrame({"id": ["a", "b"], "text": ["市政府召开常务会议研究营商环境工作", None]}), tiny_model)
    assert list(out["id"]) == ["a", "b"] and out["label"][0] and "both empty" in out["error"][1]
