"""Run folders, manifest, report building, paper-vs-ours, compare, and the HTML in a real browser."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import rundir
from benchmark.compare import compare_runs, format_comparison
from benchmark.reports import ReportError, build_report
from benchmark.reports.paper import growth_fit, load_paper_numbers, paper_vs_ours, scaling_points
from benchmark.reports.tables import aggregate, problem_jobs, scenario_table, summary_ranking
from benchmark.results import read_results
from reports_synthetic import make_run, synthetic_rows

CHROMIUM = Path("/usr/bin/chromium")


# ----------------------------------------------------------------------------- run folders

def test_run_id_is_utc_time_and_sha():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert rundir.new_run_id(when, "abc1234") == "20260102T030405Z-abc1234"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{7}|\d{8}T\d{6}Z-nogit", rundir.new_run_id())


def test_run_folder_never_overwritten_same_second(tmp_path):
    """Two (here: eight concurrent) runs started in the same second get distinct new folders."""
    first = rundir.create_run_dir(tmp_path, run_id="20260102T030405Z-abc1234")
    (first / "results.csv").write_text("precious")
    made = []
    threads = [threading.Thread(target=lambda: made.append(
        rundir.create_run_dir(tmp_path, run_id="20260102T030405Z-abc1234"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = sorted(p.name for p in made)
    assert len(set(names)) == 8 and first.name not in names
    assert all(n.startswith("20260102T030405Z-abc1234-") for n in names)
    assert (first / "results.csv").read_text() == "precious"
    # and two runs with the default id in the same second differ too
    a, b = rundir.create_run_dir(tmp_path), rundir.create_run_dir(tmp_path)
    assert a != b and a.is_dir() and b.is_dir()


def test_resolve_run_dir(tmp_path):
    a = rundir.create_run_dir(tmp_path, run_id="20260101T000000Z-aaaaaaa")
    b = rundir.create_run_dir(tmp_path, run_id="20260102T000000Z-bbbbbbb")
    for d in (a, b):
        (d / "results.csv").write_text("x")
    assert rundir.resolve_run_dir("latest", tmp_path) == b
    assert rundir.resolve_run_dir(a.name, tmp_path) == a
    assert rundir.resolve_run_dir(str(a), tmp_path) == a
    with pytest.raises(rundir.RunDirError, match="not found.*20260102T000000Z-bbbbbbb"):
        rundir.resolve_run_dir("nope", tmp_path)


def test_manifest_records_versions_hardware_seeds_jobs(tmp_path):
    d = rundir.create_run_dir(tmp_path)
    m = rundir.base_manifest(d, argv=["benchmark/__main__.py", "run", "pair"], profile="quick")
    assert m["command"].endswith("-m benchmark run pair") and m["run_id"] == d.name
    df = synthetic_rows(seeds=(0, 1))
    m = rundir.finish_manifest(m, df, wall_time_s=12.3)
    rundir.write_manifest(d, m)
    back = rundir.read_manifest(d)
    assert back["packages"]["numpy"] == np.__version__
    assert back["hardware"]["logical_cores"] >= 1 and back["hardware"]["ram_gb"] > 0
    assert back["seeds"] == [0, 1]
    job = next(j for j in back["jobs"] if j["scenario"] == "pair" and j["method"] == "good" and j["seed"] == 1)
    assert job["wall_time_s"] == pytest.approx(12.5, abs=0.2) and job["status"] == "ok"
    assert any(j["status"] == "skipped" for j in back["jobs"])
    assert back["wall_time_s"] == 12.3
    assert rundir.source_datasets(["pbmc_facs+pbmc3k", "cellbench_mixology[removed:A549]", "simulated"]) == [
        "cellbench_mixology", "pbmc3k", "pbmc_facs", "simulated"]


def test_dataset_checksum_of_a_file(tmp_path):
    p = tmp_path / "x.h5ad"
    p.write_bytes(b"hello")
    assert rundir.file_sha256(p) == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


# ----------------------------------------------------------------------------- tables

def test_aggregate_mean_sd_over_seeds():
    df = synthetic_rows(seeds=(0, 1, 2))
    agg = aggregate(df)
    pt = agg[(agg["scenario"] == "pair") & (agg["method"] == "good") & (agg["metric"] == "knn_purity")
             & (agg["k"] == 50) & (agg["dataset"] == "sim")].iloc[0]
    raw = df[(df["scenario"] == "pair") & (df["method"] == "good") & (df["metric"] == "knn_purity")
             & (df["k"] == 50) & (df["dataset"] == "sim")]["value"]
    assert pt["mean"] == pytest.approx(raw.mean()) and pt["std"] == pytest.approx(raw.std())
    assert pt["n_seeds"] == 3
    assert "status" not in set(agg["metric"])


def test_metric_direction_and_family_of_level_variants_and_growth_exponents():
    from benchmark.reports.tables import metric_direction, metric_family

    # a per-level variant ranks like its metric; a scaling exponent is a cost (smaller is better)
    for m in ("weighted_accuracy", "weighted_accuracy_coarse", "weighted_accuracy_fine"):
        assert (metric_direction(m), metric_family(m)) == (True, "bio")
    for m in ("time_exponent_cells", "memory_exponent_batches"):
        assert (metric_direction(m), metric_family(m)) == (False, "resource")
    assert metric_direction("no_such_thing_coarse") is None and metric_family("no_such_thing") == "info"


def test_summary_ranking_orders_by_quality_and_marks_controls():
    rank = summary_ranking(synthetic_rows(), controls={"random_control"})
    order = [m for m in rank["method"] if m in ("good", "bad", "random_control")]
    assert order == ["good", "bad", "random_control"]
    top = rank.set_index("method")
    assert top.loc["good", "aggregate"] > 0.99 and top.loc["good", "batch"] == pytest.approx(1.0)  # best nearly everywhere
    assert top.loc["random_control", "control"] and not top.loc["good", "control"]
    # protein_knn_error is lower-is-better: the good method must rank first on it
    assert top.loc["good", "rank: protein_knn_error"] == 1


def test_reference_rows_shown_apart_not_ranked():
    from benchmark.reports import _references
    from benchmark.reports.tables import reference_rows
    from benchmark.results import row

    df = synthetic_rows()
    seeds = pd.DataFrame([row("seed_labeling", "pbmc_facs", "signature_seeds", s, "weighted_accuracy", 0.99,
                              params_hash="abc") for s in (0, 1, 2)])
    df = pd.concat([df, seeds], ignore_index=True)
    refs = {"signature_seeds"}
    rank = summary_ranking(df, controls={"random_control"}, references=refs)
    assert "signature_seeds" not in set(rank["method"])
    # without the reference row the other methods' scaled scores are as before
    base = summary_ranking(synthetic_rows(), controls={"random_control"}).set_index("method")
    pd.testing.assert_series_equal(rank.set_index("method")["aggregate"], base["aggregate"])
    ref = reference_rows(df, refs)
    assert list(ref["reference"].unique()) == ["signature_seeds"]
    assert ref.iloc[0]["mean"] == pytest.approx(0.99) and ref.iloc[0]["seeds"] == 3
    # registered methods and their derived rows are methods; anything else is a reference
    assert _references(["scvi", "scvi+knn", "scanvi[labels:A]", "majority_vote", "signature_seeds"]) == refs


def test_scenario_table_and_problem_jobs():
    df = synthetic_rows()
    t = scenario_table(df, "seed_labeling")
    assert {"dataset", "method", "seeds", "weighted_accuracy", "accuracy"} <= set(t.columns)
    assert re.fullmatch(r"0\.\d{3} ± 0\.\d{3}", t.set_index("method").loc["good", "weighted_accuracy"])
    probs = problem_jobs(df)
    assert set(probs["status"]) == {"skipped", "failed"}
    failed = probs[probs["status"] == "failed"].iloc[0]
    assert failed["method"] == "scmap" and failed["reason"] == "ValueError: boom" and failed["seeds"] == "0,1,2"


def test_paper_numbers_file_is_complete():
    paper = load_paper_numbers()
    got = {(r.scenario, r.method, r.metric, str(r.level) if pd.notna(r.level) else ""): r.value
           for r in paper.itertuples()}
    assert got[("seed_labeling", "scanvi", "weighted_accuracy", "")] == 0.84
    assert got[("seed_labeling", "scvi+knn", "weighted_accuracy", "")] == 0.73
    assert got[("seed_labeling", "pca+knn", "weighted_accuracy", "")] == 0.71
    assert got[("seed_labeling", "scvi+kmeans", "weighted_accuracy", "")] == 0.74
    assert got[("seed_labeling", "pca+kmeans", "weighted_accuracy", "")] == 0.72
    assert got[("hierarchy", "scanvi_hierarchical", "weighted_accuracy", "fine")] == 0.37
    assert got[("hierarchy", "scanvi", "weighted_accuracy", "fine")] == 0.32
    assert got[("hierarchy", "scvi+knn", "weighted_accuracy", "fine")] == 0.32
    assert got[("hierarchy", "pca+knn", "weighted_accuracy", "fine")] == 0.23
    assert paper["source"].str.len().gt(5).all()


def test_paper_vs_ours_difference_and_not_run():
    df = synthetic_rows()
    pvo = paper_vs_ours(df)
    sc = pvo[(pvo["method"] == "scanvi") & (pvo["scenario"] == "seed_labeling")].iloc[0]
    ours = df[(df["method"] == "scanvi") & (df["metric"] == "weighted_accuracy")]["value"].mean()
    assert sc["ours"] == pytest.approx(ours) and sc["difference"] == pytest.approx(ours - 0.84)
    assert sc["seeds"] == 3 and sc["dataset"] == "pbmc_facs" and sc["note"] == "stand-in for the paper's data"
    hier = pvo[pvo["scenario"] == "hierarchy"]
    assert (hier["note"] == "not run").all() and hier["ours"].isna().all()
    # the fine level is the plain metric; the coarse one carries a suffix
    extra = df[(df["method"] == "scanvi")].assign(scenario="hierarchy")
    coarse = extra.assign(metric="weighted_accuracy_coarse", value=0.99)
    pvo2 = paper_vs_ours(pd.concat([df, extra, coarse]))
    fine = pvo2[(pvo2["scenario"] == "hierarchy") & (pvo2["method"] == "scanvi")].iloc[0]
    assert fine["level"] == "fine" and fine["ours"] == pytest.approx(ours) and fine["paper"] == 0.32
    assert len(pvo) >= len(load_paper_numbers())


def test_scaling_points_fit_and_extrapolation():
    df = synthetic_rows()
    pts = scaling_points(df)
    assert set(pts["n_cells"]) == {1000, 4000, 16000} and set(pts["n_batches"]) == {2}
    good = pts[pts["method"] == "good"]
    b, _ = growth_fit(good["n_cells"], good["wall_time_s"])
    assert b == pytest.approx(1.08, abs=0.02)  # the planted exponent 1 + 0.1 * 0.8
    pvo = paper_vs_ours(df.assign(method=df["method"].replace({"good": "scvi"})))
    row = pvo[(pvo["scenario"] == "scaling") & (pvo["method"] == "scvi") & (pvo["level"] == "105476")].iloc[0]
    assert "extrapolated" in row["note"]
    assert row["ours"] == pytest.approx(105.476 ** 1.08, rel=0.1)


# ----------------------------------------------------------------------------- report

@pytest.fixture(scope="module")
def built_run(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("reports") / "20260102T030405Z-abc1234")
    before = (run / "results.csv").read_bytes()
    html = build_report(run, umap=True)
    return run, html, before


def test_report_rebuilt_from_results_csv(built_run):
    run, html, before = built_run
    assert html == run / "report.html" and html.exists() and (run / "report.md").exists()
    for scenario in ("pair", "heldout", "seed_labeling", "trajectory", "protein", "de_bulk", "scaling"):
        assert (run / "tables" / f"{scenario}.csv").exists() and (run / "tables" / f"{scenario}.md").exists()
    figs = {p.name for p in (run / "figures").glob("*.png")}
    for expected in ("pair_over_k.png", "heldout_per_type_batch_entropy_mixing.png", "seed_labeling_metrics.png",
                     "trajectory_over_bins.png", "protein_over_k.png", "de_bulk_de_roc.png", "scaling_cells.png",
                     "pair_sim_umap.png", "protein_protein_mean_heatmap.png"):
        assert expected in figs
    assert (run / "results.csv").read_bytes() == before  # the report never edits the results
    # a second build from the CSV alone gives the same tables
    first = pd.read_csv(run / "tables" / "summary_ranking.csv")
    build_report(run, umap=False)
    pd.testing.assert_frame_equal(first, pd.read_csv(run / "tables" / "summary_ranking.csv"))


def test_report_content(built_run):
    run, html, _ = built_run
    text = html.read_text()
    assert "The paper&#x27;s numbers beside ours" in text or "The paper's numbers beside ours" in text
    assert "0.840" in text  # scANVI's 84% from the paper
    assert "ValueError: boom" in text and "R package(s) Seurat not installed" in text
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', text)
    assert len(srcs) >= 8 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:|/|\.\./|figures/)', text)  # self-contained
    md = (run / "report.md").read_text()
    assert "![" in md and "figures/pair_over_k.png" in md and "| scenario |" in md


def test_report_needs_results(tmp_path):
    with pytest.raises(ReportError, match="results.csv not found"):
        build_report(tmp_path)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (apt-get install -y chromium)")
def test_html_renders_in_headless_chromium(built_run, tmp_path):
    run, html, _ = built_run
    # count the embedded figures the browser actually decoded (naturalWidth > 0)
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace(
        "</body>", "<script>document.title='decoded:'+[...document.images].filter(i=>i.complete&&i.naturalWidth>0)"
                   ".length+'/'+document.images.length;</script></body>"))
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([*cmd, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=90).stdout
    m = re.search(r"<title>decoded:(\d+)/(\d+)</title>", dom)
    assert m, dom[:500]
    assert int(m.group(1)) == int(m.group(2)) >= 8
    shot = tmp_path / "shot.png"
    subprocess.run([*cmd, "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=90, cwd=tmp_path)
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[0] == 2400 and img.shape[1] == 1280
    assert img[..., :3].std() > 0.05  # not a blank page


# ----------------------------------------------------------------------------- compare

def test_compare_flags_moves_beyond_seed_spread(tmp_path):
    a = make_run(tmp_path / "a", artifacts=False)
    b = make_run(tmp_path / "b", artifacts=False,
                 shift={("seed_labeling", "good", "weighted_accuracy"): -0.1,
                        ("pair", "bad", "knn_purity"): 0.002})  # within noise (sd ~0.01)
    table = compare_runs(a, b)
    moved = table[table["moved"]]
    assert len(moved) == 1
    m = moved.iloc[0]
    assert (m["scenario"], m["method"], m["metric"], m["verdict"]) == ("seed_labeling", "good",
                                                                         "weighted_accuracy", "worse")
    assert m["change"] == pytest.approx(-0.1, abs=1e-9)
    same = compare_runs(a, a)
    assert not same["moved"].any()
    text = format_comparison(table, "a", "b")
    assert "1 of" in text and "weighted_accuracy" in text and "worse" in text


def test_compare_reports_status_changes_and_missing(tmp_path):
    a = make_run(tmp_path / "a", artifacts=False)
    df = read_results(a / "results.csv")
    df = df[~((df["scenario"] == "de_bulk") & (df["method"] == "bad"))]
    df.loc[(df["scenario"] == "protein") & (df["method"] == "good"), ["status", "value", "metric", "error"]] = [
        "failed", np.nan, "status", "boom"]
    b = tmp_path / "b"
    b.mkdir()
    df.to_csv(b / "results.csv", index=False)
    table = compare_runs(a, b)
    verdicts = set(table["verdict"])
    assert "only in A" in verdicts and "status ok -> failed" in verdicts


def test_metric_at_one_k_is_drawn_as_a_bar_not_a_curve(tmp_path):
    from benchmark.reports.figures import curves, metric_bars

    df = synthetic_rows()
    pair = df[df["scenario"] == "pair"]
    one_k = pair[(pair["metric"] == "knn_purity") & (pair["k"] == 50)]
    mixed = pd.concat([one_k, pair[pair["metric"] == "batch_entropy_mixing"]])
    (fig,) = curves(mixed, "pair", tmp_path)
    assert "batch_entropy_mixing" in fig.title and "knn_purity" not in fig.title
    assert curves(one_k, "pair", tmp_path) == []
    (bars,) = metric_bars(one_k, "pair", tmp_path)
    assert bars.path.exists()
    # the same metric over several k is a curve only
    assert metric_bars(pair[pair["metric"] == "knn_purity"], "pair", tmp_path) == []
