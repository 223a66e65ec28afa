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
    shell:
        "{PY} -m pae prepare --dataset {params.dataset} --spec {params.spec:q} --out {output}"
        " --download-root {params.download_root} > {log} 2>&1"
