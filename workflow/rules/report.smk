# The experiment's tables, figures and report.md; `snakemake --report report.html` gathers those marked report()
# into one HTML file (captions: workflow/report/).
rule report:
    input:
        get_report_inputs,
    output:
        tables=[
            report(f"{PATHS['tables']}/{name}.csv", caption="../report/table.rst", category="Tables")
            for name in REPORT_TABLES
        ],
        figures=report(
            directory(PATHS["figures"]),
            patterns=["{name}.png"],
            caption="../report/figure.rst",
            category="Figures",
        ),
        report=report(PATHS["report"], caption="../report/report_md.rst", category="Report"),
    params:
        config=get_config_json,
        configfiles=get_configfile_args,
        launcher=get_launcher,
        job=get_job("report"),
    resources:
        attempt=get_attempt,
    log:
        log_file("report"),
    benchmark:
        benchmark_file("report")
    threads: 1
    shell:
        pae_shell("report --config {params.config:q} {params.configfiles} --tables-dir {PATHS[tables]:q} "
                  "--figures-dir {output.figures:q} --report {output.report:q}")
