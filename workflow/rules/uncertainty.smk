# The decoder's predicted uncertainty (calibration of the likelihood on the test images) and the arrays of the
# uncertainty, sample-uncertainty and traversal figures, which the report draws.
rule uncertainty:
    input:
        model=PATHS["model"],
        flow=PATHS["flow"],
        latents=PATHS["latents"],
        data=get_run_file("data"),
    output:
        metrics=PATHS["uncertainty"],
        panels=PATHS["uncertainty_panels"],
    params:
        spec=get_run_eval_spec("uncertainty"),
        batch_size=config["eval"]["batch_size"],
        device=config["device"],
        launcher=get_launcher,
        job=get_job("uncertainty"),
    resources:
        attempt=get_attempt,
    log:
        log_file("uncertainty"),
    benchmark:
        benchmark_file("uncertainty")
    threads: 4
    shell:
        pae_shell("uncertainty --spec {params.spec:q} --model {input.model:q} --flow {input.flow:q} "
                  "--data {input.data:q} --latents {input.latents:q} --out {output.metrics:q} "
                  "--panels-out {output.panels:q} --batch-size {params.batch_size} --device {params.device:q}")
