# Inpainting and denoising with posterior analysis (MAP, Laplace, MCMC) on corrupted test images.
rule posterior:
    input:
        model=f"{RES}/{{run}}/model/model.pt",
        flow=f"{RES}/{{run}}/flow/flow.pt",
        latents=f"{RES}/{{run}}/latents.h5",
        data=run_data,
    output:
        metrics=f"{RES}/{{run}}/metrics/posterior.json",
        panels=f"{RES}/{{run}}/posterior_panels.h5",
    params:
        spec=eval_spec("posterior"),
        device=config["device"],
    log:
        f"{LOGS}/{{run}}/posterior.log",
    benchmark:
        f"{BENCH}/{{run}}/posterior.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "posterior", ["--spec", params.spec, "--model", input.model, "--flow", input.flow,
                  "--data", input.data, "--latents", input.latents, "--out", output.metrics,
                  "--panels-out", output.panels, "--device", params.device], log, threads, resources)
