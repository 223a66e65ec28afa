rule report:
    input:
        report_inputs,
    output:
        table=f"{RES}/tables/runs.csv",
        figures=directory(f"{RES}/figures"),
    params:
        manifest=report_manifest,
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv"
    threads: 1
    run:
        pae_stage(rule, wildcards, "report", ["--manifest", params.manifest, "--table-out", output.table,
                  "--figures-dir", output.figures], log, threads, resources)
