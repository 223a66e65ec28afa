# Out-of-distribution detection: the run's test images against other datasets, flipped images and user folders.
rule ood:
    input:
        unpack(lambda wc: {f"ood_{d}": p for d, p in run_ood_data(wc).items()}),
        model=f"{RES}/{{run}}/model/model.pt",
        flow=f"{RES}/{{run}}/flow/flow.pt",
        data=run_data,
    output:
        metrics=f"{RES}/{{run}}/metrics/ood.json",
        scores=f"{RES}/{{run}}/metrics/ood_scores.csv",
    params:
        spec=eval_spec("ood"),
        ood_data=ood_data_args,
        device=config["device"],
    log:
        f"{LOGS}/{{run}}/ood.log",
    benchmark:
        f"{BENCH}/{{run}}/ood.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "ood", ["--spec", params.spec, "--model", input.model, "--flow", input.flow,
                  "--data", input.data, *params.ood_data, "--out", output.metrics, "--scores-out", output.scores,
                  "--device", params.device], log, threads, resources)
