"""report.md (pae/report/markdown.py): the sections, our values beside the papers' and links only to drawn figures
(the export: tests/report/test_figures.py)."""
from __future__ import annotations

from pae.report import markdown, summary

REFS = [{"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 8, "metric": "fid",
         "value": 28.0, "n": None, "protocol": None, "source": "the paper, Table 1", "cited_as": "paper, Table 1",
         "what": "PAE FID"},
        {"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 8, "metric": "recon_mse",
         "value": 0.0064, "source": "a notebook", "cited_as": "authors' notebook, cell 12", "what": "test MSE"},
        {"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "metric": "fid_minmax_prior",
         "value": 102.9, "n": 10000, "protocol": "tensorflow, minmax", "source": "a notebook",
         "cited_as": "authors' notebook, cell 19", "what": "N(0, I) samples"},
        {"table": "table2", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 8, "ood_set": "mnist",
         "score": "flow_logp", "metric": "auroc", "value": 0.997, "source": "the paper,\n  Table 2",
         "cited_as": "paper, Table 2", "what": "AUROC"}]


def _rows():
    runs, samplers, ood, posterior, impute = [], [], [], [], []
    for seed in (0, 1):
        run = {"run": f"fashion_mnist-ae-z8-s{seed}", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 8,
               "seed": seed, "recon_mse": 0.01 + 0.001 * seed, "time_train_s": 10.0 + seed, "time_ood_s": None}
        runs.append(run)
        grid = {k: run[k] for k in ("run", "dataset", "model", "latent_dim", "seed")}
        for name, t, v in (("prior", None, 100.0), ("pae_T1.0", 1.0, 20.0 + seed), ("reconstructions", None, 5.0),
                           ("train_vs_test", None, 0.5)):
            samplers.append({**grid, "set": name, "temperature": t, "domain_fd": v, "domain_fd_low": v - 1,
                             "domain_fd_high": v + 1, "fid": None, "fid_low": None, "fid_high": None})
        ood.append({**grid, "ood_set": "mnist", "score": "flow_logp", "n_in": 100, "n_out": 100,
                    "ood_data": "5,000 digits",
                    "auroc": 0.9 + seed / 100,
                    "auroc_low": 0.85, "auroc_high": 0.95, "aupr": 0.9, "aupr_low": 0.8, "aupr_high": 0.95,
                    "fpr95": 0.3, "fpr95_low": 0.2, "fpr95_high": 0.4})
        posterior.append({**grid, "corruption": "left_half", "method": "map", "mse_missing": 0.03, "mse_all": 0.02,
                          "coverage68_missing": 0.6, "coverage95_missing": 0.9, "coverage95_all": 0.93})
    impute.append({"dataset": "fashion_mnist", "model": "ae", "latent_dim": 8, "train_missing": "clean",
                   "test_ratio": 0.5, "method": "pae_map", "mse_missing": 0.02, "mse_low": 0.018, "mse_high": 0.022,
                   "n_seeds": 2})
    return {"runs": runs, "table1": summary.table1(runs, samplers, REFS), "table2": summary.table2(ood, REFS),
            "posterior": posterior, "impute": impute}


def test_report_has_every_section_our_values_and_the_papers(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "fd_vs_latent.png").write_bytes(b"png")
    (figures / "fashion_mnist-ae-z8-s0_ood_roc.png").write_bytes(b"png")
    path = tmp_path / "report.md"
    markdown.write_report(path, "exp", _rows(), REFS, figures, "FID was not computed: no weights.")
    text = path.read_text()
    for heading in ("# Experiment `exp`", "## Sample quality and reconstruction (Table 1 style)",
                    "## Out-of-distribution detection (Table 2 style)", "## Inpainting and denoising",
                    "## Missing-data imputation", "## Stage wall times", "## Reference values"):
        assert heading in text
    table1_line = next(line for line in text.splitlines() if line.startswith("| fashion_mnist | ae | 8 | 2 |"))
    # mean over 2 seeds with the t interval, then the runs' bootstrap over images averaged ([19, 21] and [20, 22])
    assert "| 0.0105 [" in table1_line and "20.5 [" in table1_line and "(images: [19.5, 21.5])" in table1_line
    assert "28" not in table1_line  # references are judged in their own section, not set beside one column
    assert "Values are means over seeds" in text and "Every result is from one seed" not in text
    # the images behind each AUROC and what the OoD set is
    assert "| fashion_mnist | ae | 8 | mnist | 2 | 100 / 100 | 5,000 digits | 0.905 [" in text
    assert "0.02 [0.018, 0.022]" in text and "FID was not computed: no weights." in text
    # only figures that exist are linked; the others are named as not drawn
    assert markdown.FIGURE_LINK.findall(text) == ["figures/fd_vs_latent.png",
                                                  "figures/fashion_mnist-ae-z8-s0_ood_roc.png"]
    assert "(distance vs flow temperature: not drawn)" in text
    assert "| train | 2 | 10.5 | 11.0 | 21 |" in text and "| ood |" not in text  # ood has no benchmark here
    # Reference values: each beside ours at the same coordinates with its source and verdict, then the sources; a
    # reference at a latent size this experiment does not have (32) is left out
    refs = text[text.index("## Reference values"):]
    assert "| table1 | fashion_mnist | ae | 8 | fid | 28 | paper, Table 1 | n not stated; protocol not stated | - " \
        "| no value of ours |" in refs  # no FID computed here
    assert "| table1 | fashion_mnist | ae | 8 | recon_mse | 0.0064 | authors' notebook, cell 12 | - | 0.0105 [" in refs
    assert "fid_minmax_prior" not in refs
    # AUROC 0.905 over 2 seeds, t interval [0.8415, 0.9685]: below 0.997
    assert "| auroc, mnist, flow_logp | 0.997 | paper, Table 2 | - | 0.905 [0.8415, 0.9685] (images: [0.85, 0.95]) " \
        "| missed by 0.092 |" in refs
    assert "3. table2 auroc (fashion_mnist, latent 8), AUROC: the paper, Table 2" in refs
    assert "Inception weights" not in text


def test_ood_section_shows_the_runs_with_an_ood_stage_only(tmp_path):
    """A grid block may skip the ood stage (e.g. at latent sizes no OoD table needs): the ROC figure shown is that of
    a run that has one, and a report without any says so."""
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "fashion_mnist-ae-z8-s0_ood_roc.png").write_bytes(b"png")
    rows = _rows()
    z16 = {**rows["runs"][0], "run": "fashion_mnist-ae-z16-s0", "latent_dim": 16, "seed": 0}
    rows["runs"].append(z16)  # the largest latent size, without OoD: not the OoD section's showcase
    markdown.write_report(tmp_path / "report.md", "exp", rows, REFS, figures, "")
    ood = (tmp_path / "report.md").read_text().split("## Out-of-distribution detection")[1].split("\n## ")[0]
    assert markdown.FIGURE_LINK.findall(ood) == ["figures/fashion_mnist-ae-z8-s0_ood_roc.png"]
    assert "| fashion_mnist | ae | 16 |" not in ood and "not drawn" not in ood

    markdown.write_report(tmp_path / "none.md", "exp", {**rows, "table2": []}, REFS, figures, "")
    ood = (tmp_path / "none.md").read_text().split("## Out-of-distribution detection")[1].split("\n## ")[0]
    assert "No run of this experiment has an ood stage" in ood and "|" not in ood


def _section(text: str, heading: str) -> str:
    return text.split(f"## {heading}")[1].split("\n## ")[0]


def test_reference_table_lists_only_this_experiments_references(tmp_path):
    """An experiment without a run at a reference's dataset, model and latent size (a VAD or uncertainty grid) lists
    none of them and says so."""
    rows = _rows()
    for r in rows["runs"]:
        r["model"] = "vad"
    markdown.write_report(tmp_path / "report.md", "exp", rows, REFS, tmp_path, "")
    refs = _section((tmp_path / "report.md").read_text(), "Reference values")
    assert "No reference value" in refs and "|" not in refs and "Sources" not in refs


def test_an_fid_at_another_n_is_marked_not_comparable_and_every_protocol_is_a_column(tmp_path):
    """The demo's FID at n = 200 beside a notebook's at 10,000: not a comparison. Each FID row names its protocol and
    its n; a one-seed experiment says its intervals are over images."""
    run = {"run": "fashion_mnist-ae-z32-s0", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "seed": 0,
           "recon_mse": 0.0065, "fid_n": 200, "fid_preprocessing": "pytorch"}
    grid = {k: run[k] for k in ("run", "dataset", "model", "latent_dim", "seed")}
    samplers = [{**grid, "set": "prior", "temperature": None, "n_generated": 10000, "n_real": 10000,
                 "domain_fd": 50.0, "domain_fd_low": 49.0, "domain_fd_high": 51.0,
                 "fid": 150.0, "fid_low": 140.0, "fid_high": 160.0},
                {**grid, "set": "pae_T1.0", "temperature": 1.0, "n_generated": 10000, "n_real": 10000,
                 "domain_fd": 5.0, "domain_fd_low": 4.0, "domain_fd_high": 6.0,
                 "fid": 108.3, "fid_low": 100.1, "fid_high": 115.2}]
    refs = [{**REFS[0], "latent_dim": 32},
            {**REFS[2], "metric": "fid", "value": 34.85, "protocol": "pytorch, uint8", "what": "notebook FID"}]
    rows = {"runs": [run], "table1": summary.table1([run], samplers, refs), "table2": [], "posterior": [],
            "impute": []}
    markdown.write_report(tmp_path / "report.md", "demo", rows, refs, tmp_path, "FID was computed.")
    text = (tmp_path / "report.md").read_text()
    assert "Every result is from one seed (seed 0)" in text
    quality = _section(text, "Sample quality and reconstruction (Table 1 style)")
    assert "| fashion_mnist | ae | 32 | 1 | pytorch, uint8 (pixels as they are) | 200 | 108.3 [100.1, 115.2] |" \
        in quality
    refs_text = _section(text, "Reference values")
    assert "| fid | 28 | paper, Table 1 | n not stated; protocol not stated | 108.3 [100.1, 115.2] (pytorch, uint8), " \
        "n = 200 | not comparable (the reference states no n or protocol; ours: n = 200; pytorch, uint8) |" in refs_text
    assert "| fid | 34.85 | authors' notebook, cell 19 | n = 10,000; protocol pytorch, uint8 | 108.3 [100.1, 115.2] " \
        "(pytorch, uint8), n = 200 | not comparable (n = 200 vs 10,000) |" in refs_text


def test_posterior_section_gives_each_row_its_images(tmp_path):
    rows = _rows()
    grid = {k: rows["runs"][0][k] for k in ("run", "dataset", "model", "latent_dim", "seed")}
    base = {**grid, "corruption": "left_half", "mse_all": 0.02, "coverage68_missing": 0.6, "coverage95_missing": 0.9,
            "coverage95_all": 0.93}
    rows["posterior"] = [{**base, "method": "map", "image_set": "all", "n_images": 30, "mse_missing": 0.05},
                         {**base, "method": "mcmc", "image_set": "nuts", "n_images": 8, "mse_missing": 0.03},
                         {**base, "method": "laplace", "image_set": "nuts", "n_images": 8, "mse_missing": 0.04}]
    (tmp_path / f"{grid['run']}_posterior_left_half.png").write_bytes(b"")  # a figure per corruption
    markdown.write_report(tmp_path / "report.md", "exp", rows, REFS, tmp_path, "")
    posterior = _section((tmp_path / "report.md").read_text(), "Inpainting and denoising: posterior analysis")
    assert "| left_half | all (30) | map | 1 | 0.05 |" in posterior
    assert "| left_half | NUTS's (8) | laplace | 1 | 0.04 |" in posterior
    assert "| left_half | NUTS's (8) | mcmc | 1 | 0.03 |" in posterior
    assert f"![posterior panels, {grid['run']}, left_half]({tmp_path.name}/{grid['run']}_posterior_left_half.png)" \
        in posterior


def test_kid_precision_and_recall_beside_every_fid_and_the_coverage_claim_judged(tmp_path):
    """Table 1's fidelity-and-coverage table: a row per sampler with its FID, KID, precision and recall; and the
    PAE paper's claims stated from them (the PAE's flow samples against N(0, I) and the VAE's): a difference only
    where the intervals do not overlap, the values' alone (said so) where neither row has one."""
    from pae.report import summary

    runs, samplers = [], []
    for model, recalls in (("ae", {"pae_T1.0": 0.6, "prior": 0.2}), ("vae", {"pae_T1.0": 0.7, "prior": 0.4})):
        run = {"run": f"fashion_mnist-{model}-z32-s0", "dataset": "fashion_mnist", "model": model, "latent_dim": 32,
               "seed": 0, "recon_mse": 0.006, "fid_preprocessing": "tensorflow", "fid_n": 10000}
        runs.append(run)
        for name, t in (("prior", None), ("pae_T1.0", 1.0), ("reconstructions", None), ("train_vs_test", None)):
            samplers.append({**{k: run[k] for k in ("run", "dataset", "model", "latent_dim", "seed")}, "set": name,
                             "temperature": t, "n_generated": 10000, "n_real": 10000, "domain_fd": 5.0,
                             "domain_fd_low": 4.0, "domain_fd_high": 6.0, "fid": 30.0, "fid_low": 29.0,
                             "fid_high": 31.0, "fid_kid": 0.012, "fid_kid_std": 0.001, "fid_precision": 0.8,
                             "fid_recall": recalls.get(name, 0.5)})
    t1 = summary.table1(runs, samplers, [])
    text = "\n".join(markdown._coverage_section(t1))
    assert ("| fashion_mnist | ae | 32 | 1 | tensorflow, uint8 (pixels as they are) | 10,000 | flow (PAE), T = 1 | "
            "30 [29, 31] | 0.012 | 0.8 | 0.6 |") in text
    assert ("AE + flow (PAE), fashion_mnist latent 32, tensorflow, uint8 (pixels as they are): FID 30 [29, 31] "
            "(one seed); not distinguished from AE: N(0, I) (30 [29, 31]), VAE: flow, T = 1 (30 [29, 31]), VAE: N(0, I) "
            "(30 [29, 31]). Recall 0.6 (one seed); more than AE: N(0, I) (0.2, no interval), VAE: N(0, I) (0.4, no "
            "interval); less than VAE: flow, T = 1 (0.7, no interval).") in text
    assert "| fashion_mnist | vae | 32 | 1 | tensorflow, uint8 (pixels as they are) | 10,000 | flow, T = 1 |" in text
    assert markdown._coverage_section(summary.table1(runs, [{**r, "fid_recall": None} for r in samplers], [])) == []


def test_the_pae_against_other_samplers_by_their_intervals_over_seeds_and_over_images():
    """The PAE row over three seeds (an interval over seeds) against a VAE of one seed (an interval over images for
    FID, none for recall): lower or more only where the intervals do not overlap, or where the one interval there is
    excludes the other's value."""
    cell = lambda v, lo=None, hi=None: {"": v, "_low": lo, "_high": hi}  # noqa: E731
    def row(model, n_seeds, values):
        r = {"dataset": "fashion_mnist", "model": model, "latent_dim": 32, "n_seeds": n_seeds, "fid_n": 10000,
             "fid_protocol": "tensorflow, minmax"}
        for key, c in values.items():
            r.update({f"fid_{key}{suffix}": v for suffix, v in c.items()})
        return r
    t1 = [row("ae", 3, {"pae_T1": cell(33.0, 31.0, 35.0), "recall_pae_T1": cell(0.5, 0.45, 0.55),
                        "prior": cell(100.0, 98.0, 102.0), "recall_prior": cell(0.2, 0.15, 0.25)}),
          row("vae", 1, {"pae_T1": cell(34.0, 33.5, 34.5), "recall_pae_T1": cell(0.6),
                         "prior": cell(60.0, 59.0, 61.0), "recall_prior": cell(0.52)})]
    text = "\n".join(markdown._coverage_section(t1))
    assert ("AE + flow (PAE), fashion_mnist latent 32, tensorflow, minmax (each image min-max stretched): "
            "FID 33 [31, 35] (3 seeds); lower than AE: N(0, I) (100 [98, 102]), VAE: N(0, I) (60 [59, 61]; one seed); "
            "not distinguished from VAE: flow, T = 1 (34 [33.5, 34.5]; one seed). "
            "Recall 0.5 [0.45, 0.55] (3 seeds); more than AE: N(0, I) (0.2 [0.15, 0.25]); not distinguished from "
            "VAE: N(0, I) (0.52; one seed); less than VAE: flow, T = 1 (0.6; one seed).") in text
    assert "Lower or higher only where the two 95% intervals do not overlap" in text
    # no AE with a flow in the grid: the table, but no comparison with the PAE
    vae_only = "\n".join(markdown._coverage_section(t1[1:]))
    assert "| fashion_mnist | vae | 32 |" in vae_only and "The PAE against" not in vae_only


def test_posterior_figures_in_pages_are_linked_in_order(tmp_path):
    """A corruption with more figure images than a page holds is drawn in pages (figures.by_corruption): the report
    links each page in image order, and "noise" does not pick up "noise_sparse"'s figure."""
    rows = _rows()
    grid = {k: rows["runs"][0][k] for k in ("run", "dataset", "model", "latent_dim", "seed")}
    base = {**grid, "method": "map", "image_set": "all", "n_images": 30, "mse_missing": 0.05, "mse_all": 0.02,
            "coverage68_missing": 0.6, "coverage95_missing": 0.9, "coverage95_all": 0.93}
    rows["posterior"] = [{**base, "corruption": "noise"}, {**base, "corruption": "noise_sparse"}]
    run = grid["run"]
    for name in ("noise_images13-24", "noise_images1-12", "noise_images25-30", "noise_sparse"):
        (tmp_path / f"{run}_posterior_{name}.png").write_bytes(b"")
    markdown.write_report(tmp_path / "report.md", "exp", rows, REFS, tmp_path, "")
    links = [line for line in (tmp_path / "report.md").read_text().splitlines()
             if line.startswith("![posterior panels")]
    assert [link.rsplit("_posterior_", 1)[1] for link in links] == [
        "noise_images1-12.png)", "noise_images13-24.png)", "noise_images25-30.png)", "noise_sparse.png)"]


def test_sample_figures_in_pages_are_linked_in_latent_order_and_only_their_dataset(tmp_path):
    rows = _rows()
    dataset = rows["runs"][0]["dataset"]
    for name in (f"samples_{dataset}_z64-128", f"samples_{dataset}_z8-32", f"samples_{dataset}_zoo_z4-4"):
        (tmp_path / f"{name}.png").write_bytes(b"")
    markdown.write_report(tmp_path / "report.md", "exp", rows, REFS, tmp_path, "")
    links = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("![samples")]
    assert [link.rsplit("/", 1)[1] for link in links] == [f"samples_{dataset}_z8-32.png)",
                                                           f"samples_{dataset}_z64-128.png)"]


def test_rows_over_several_seeds_list_each_seed_with_its_own_intervals(tmp_path):
    """A Table 1 row averaged over seeds is followed by each seed's FIDs (bootstrap over images) and recon MSE; a
    row of one seed needs no such table."""
    rows = _rows()
    samplers = []
    for seed in (0, 1):
        grid = {"run": f"fashion_mnist-ae-z8-s{seed}", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 8,
                "seed": seed}
        for name, t, v in (("prior", None, 100.0 + seed), ("pae_T1.0", 1.0, 30.0 + 2 * seed),
                           ("reconstructions", None, 9.0), ("train_vs_test", None, 0.5)):
            samplers.append({**grid, "set": name, "temperature": t, "domain_fd": v, "domain_fd_low": v - 1,
                             "domain_fd_high": v + 1, "fid": v, "fid_low": v - 1,
                             "fid_high": v + 1, "fid_n": 500})
    for r, low, high in zip(rows["runs"], (0.009, 0.010), (0.011, 0.012)):
        r.update(fid_preprocessing="tensorflow", fid_n=500, recon_mse_low=low, recon_mse_high=high)
    rows["samplers"] = samplers
    rows["table1"] = summary.table1(rows["runs"], samplers, REFS)
    path = tmp_path / "report.md"
    markdown.write_report(path, "exp", rows, REFS, tmp_path, "")
    text = path.read_text()
    assert "| dataset | model | latent | seed | protocol | FID n | flow T=1 | N(0, I) | reconstructions | recon MSE |" \
        in text
    assert "| fashion_mnist | ae | 8 | 0 | tensorflow, uint8 (pixels as they are) | 500 | 30 [29, 31] | 100 [99, 101] " \
        "| 9 [8, 10] | 0.01 [0.009, 0.011] |" in text
    assert "| fashion_mnist | ae | 8 | 1 | tensorflow, uint8 (pixels as they are) | 500 | 32 [31, 33] | 101 [100, 102] " \
        "| 9 [8, 10] | 0.011 [0.01, 0.012] |" in text

    one = {k: [r for r in v if r.get("seed", 0) == 0] for k, v in rows.items() if k in ("runs", "samplers")}
    one = {**rows, **one, "table1": summary.table1(one["runs"], one["samplers"], REFS)}
    markdown.write_report(path, "exp", one, REFS, tmp_path, "")
    assert "*Each seed*" not in path.read_text()
