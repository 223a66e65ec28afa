rule encode:
    input:
        model=PATHS["model"],
        data=get_run_file("data"),
    output:
        PATHS["latents"],
    params:
        device=config["device"],
        missing=get_missing,
        seed=get_seed,
        launcher=get_launcher,
        job=get_job("encode"),
    resources:
        attempt=get_attempt,
    log:
        log_file("encode"),
    benchmark:
        benchmark_file("encode")
    threads: 4
    shell:
        pae_shell("encode --model {input.model:q} --data {input.data:q} --out {output:q} --device {params.device:q} "
                  "--missing {params.missing:q} --seed {params.seed:q}")
