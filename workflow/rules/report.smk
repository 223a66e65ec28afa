rule report:
    input:
        report_inputs,
    output:
        tables=[f"{RES}/tables/{name}.csv" for name in REPORT_TABLES],
        figures=directory(f"{RES}/figures"),
        report=f"{RES}/report.md",
    params:
        manifest=report_manifest,
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv"
    threads: 1
    run:
        pae_stage(rule, wildcards, "report", ["--manifest", params.manifest, "--tables-dir", f"{RES}/tables",
                  "--figures-dir", output.figures, "--report", output.report], log, threads, resources)
