rule prepare:
    output:
        f"{DATA}/{{data_key}}.h5",
    params:
        dataset=data_name,
        spec=dataset_spec,
        download_root=f"{config['resources_dir']}/raw",
    log:
        "logs/prepare/{data_key}.log",
    benchmark:
        "benchmarks/prepare/{data_key}.tsv"
    threads: 1
    run:
        pae_stage(rule, wildcards, "prepare", ["--dataset", params.dataset, "--spec", params.spec, "--out", output[0],
                  "--download-root", params.download_root], log, threads, resources)
