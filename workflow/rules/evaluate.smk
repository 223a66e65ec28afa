rule evaluate:
    input:
        model=f"{RES}/{{run}}/model/model.pt",
        flow=f"{RES}/{{run}}/flow/flow.pt",
        latents=f"{RES}/{{run}}/latents.h5",
        data=run_data,
    output:
        recon=f"{RES}/{{run}}/metrics/recon.json",
        flow=f"{RES}/{{run}}/metrics/flow.json",
        scores=f"{RES}/{{run}}/metrics/test_scores.csv",
        samples=f"{RES}/{{run}}/samples.h5",
    params:
        spec=eval_spec(),
        metrics_dir=f"{RES}/{{run}}/metrics",
        device=config["device"],
    log:
        f"{LOGS}/{{run}}/evaluate.log",
    benchmark:
        f"{BENCH}/{{run}}/evaluate.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "evaluate", ["--spec", params.spec, "--model", input.model, "--flow", input.flow,
                  "--data", input.data, "--latents", input.latents, "--metrics-dir", params.metrics_dir,
                  "--samples-out", output.samples, "--device", params.device], log, threads, resources)
