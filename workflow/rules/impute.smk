# Missing-data imputation sweep over missing ratios (every run; matched-imputation runs at their own ratio).
rule impute:
    input:
        model=PATHS["model"],
        flow=PATHS["flow"],
        latents=PATHS["latents"],
        data=get_run_file("data"),
    output:
        PATHS["impute"],
    params:
        spec=eval_spec("impute"),
        missing=get_missing,
        device=config["device"],
        launcher=get_launcher,
        job=get_job("impute"),
    resources:
        attempt=get_attempt,
    log:
        log_file("impute"),
    benchmark:
        benchmark_file("impute")
    threads: 4
    shell:
        pae_shell("impute --spec {params.spec:q} --model {input.model:q} --flow {input.flow:q} --data {input.data:q} "
                  "--latents {input.latents:q} --train-missing {params.missing:q} --out {output:q} "
                  "--device {params.device:q}")
