rule evaluate:
    input:
        model=PATHS["model"],
        flow=PATHS["flow"],
        latents=PATHS["latents"],
        data=get_run_file("data"),
    output:
        recon=PATHS["recon"],
        flow=PATHS["flow_metrics"],
        scores=PATHS["test_scores"],
        samples=PATHS["samples"],
    params:
        spec=eval_spec(),
        metrics_dir=PATHS["metrics_dir"],
        device=config["device"],
        launcher=get_launcher,
        job=get_job("evaluate"),
    resources:
        attempt=get_attempt,
    log:
        log_file("evaluate"),
    benchmark:
        benchmark_file("evaluate")
    threads: 4
    shell:
        pae_shell("evaluate --spec {params.spec:q} --model {input.model:q} --flow {input.flow:q} "
                  "--data {input.data:q} --latents {input.latents:q} --metrics-dir {params.metrics_dir:q} "
                  "--samples-out {output.samples:q} --device {params.device:q}")
