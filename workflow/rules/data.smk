rule prepare:
    output:
        PATHS["data"],
    params:
        dataset=get_dataset,
        spec=get_dataset_spec,
        download_root=f"{config['resources_dir']}/raw",
        launcher=get_launcher,
        job=get_job("prepare"),
    resources:
        attempt=get_attempt,
    log:
        log_file("prepare"),
    benchmark:
        benchmark_file("prepare")
    threads: 1
    shell:
        pae_shell("prepare --dataset {params.dataset:q} --spec {params.spec:q} --out {output:q} "
                  "--download-root {params.download_root:q}")
