# Missing-data imputation sweep over missing ratios (every run; matched-imputation runs at their own ratio).
rule impute:
    input:
        model=f"{RES}/{{run}}/model/model.pt",
        flow=f"{RES}/{{run}}/flow/flow.pt",
        latents=f"{RES}/{{run}}/latents.h5",
        data=run_data,
    output:
        f"{RES}/{{run}}/metrics/impute.json",
    params:
        spec=eval_spec("impute"),
        missing=run_missing,
        device=config["device"],
    log:
        f"{LOGS}/{{run}}/impute.log",
    benchmark:
        f"{BENCH}/{{run}}/impute.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "impute", ["--spec", params.spec, "--model", input.model, "--flow", input.flow,
                  "--data", input.data, "--latents", input.latents, "--train-missing", params.missing,
                  "--out", output[0], "--device", params.device], log, threads, resources)
