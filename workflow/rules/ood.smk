# Out-of-distribution detection: the run's test images against other datasets, flipped images and user folders.
rule ood:
    input:
        unpack(get_ood_data),
        model=PATHS["model"],
        flow=PATHS["flow"],
        data=get_run_file("data"),
    output:
        metrics=PATHS["ood"],
        scores=PATHS["ood_scores"],
    params:
        spec=eval_spec("ood"),
        ood_data=get_ood_args,
        device=config["device"],
        launcher=get_launcher,
        job=get_job("ood"),
    resources:
        attempt=get_attempt,
    log:
        log_file("ood"),
    benchmark:
        benchmark_file("ood")
    threads: 4
    shell:
        pae_shell("ood --spec {params.spec:q} --model {input.model:q} --flow {input.flow:q} --data {input.data:q} "
                  "{params.ood_data:q} --out {output.metrics:q} --scores-out {output.scores:q} "
                  "--device {params.device:q}")
