# Inpainting and denoising with posterior analysis (MAP, Laplace, MCMC) on corrupted test images.
rule posterior:
    input:
        model=PATHS["model"],
        flow=PATHS["flow"],
        latents=PATHS["latents"],
        data=get_run_file("data"),
        classifier=get_run_file("classifier"),
    output:
        metrics=PATHS["posterior"],
        panels=PATHS["posterior_panels"],
    params:
        spec=get_run_eval_spec("posterior"),
        device=config["device"],
        launcher=get_launcher,
        job=get_job("posterior"),
    resources:
        attempt=get_attempt,
    log:
        log_file("posterior"),
    benchmark:
        benchmark_file("posterior")
    threads: 1  # the stage computes on one thread (launcher-independent NUTS; pae/stages/posterior.py)
    shell:
        pae_shell("posterior --spec {params.spec:q} --model {input.model:q} --flow {input.flow:q} "
                  "--data {input.data:q} --latents {input.latents:q} --out {output.metrics:q} "
                  "--panels-out {output.panels:q} --classifier {input.classifier:q} --device {params.device:q}")
