rule report:
    input:
        report_inputs,
    output:
        tables=[f"{RES}/tables/{name}.csv" for name in ("runs", "samplers", "ood", "posterior", "impute")],
        figures=directory(f"{RES}/figures"),
    params:
        manifest=report_manifest,
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv"
    threads: 1
    run:
        pae_stage(rule, wildcards, "report", ["--manifest", params.manifest, "--tables-dir", f"{RES}/tables",
                  "--figures-dir", output.figures], log, threads, resources)
