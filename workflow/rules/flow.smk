rule fit_flow:
    input:
        PATHS["latents"],
    output:
        flow=PATHS["flow"],
        history=PATHS["flow_history"],
    params:
        spec=get_flow_spec,
        device=config["device"],
        launcher=get_launcher,
        job=get_job("fit_flow"),
    resources:
        attempt=get_attempt,
    log:
        log_file("fit_flow"),
    benchmark:
        benchmark_file("fit_flow")
    threads: 4
    shell:
        pae_shell("fit_flow --spec {params.spec:q} --latents {input:q} --out {output.flow:q} "
                  "--history-out {output.history:q} --device {params.device:q}")
