# Sample quality: the domain classifier (once per dataset) and the FID / domain Fréchet distance of each run.
rule train_classifier:
    input:
        f"{DATA}/{{data_key}}.h5",
    output:
        f"{RES}/classifiers/{{data_key}}.pt",
    params:
        spec=eval_spec("classifier"),
        device=config["device"],
    log:
        f"{LOGS}/classifiers/{{data_key}}.log",
    benchmark:
        f"{BENCH}/classifiers/{{data_key}}.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "train_classifier", ["--spec", params.spec, "--data", input[0], "--out", output[0],
                  "--device", params.device], log, threads, resources)


rule fid:
    input:
        model=f"{RES}/{{run}}/model/model.pt",
        flow=f"{RES}/{{run}}/flow/flow.pt",
        latents=f"{RES}/{{run}}/latents.h5",
        data=run_data,
        classifier=run_classifier,
    output:
        f"{RES}/{{run}}/metrics/fid.json",
    params:
        spec=eval_spec("fid"),
        device=config["device"],
    log:
        f"{LOGS}/{{run}}/fid.log",
    benchmark:
        f"{BENCH}/{{run}}/fid.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "fid", ["--spec", params.spec, "--model", input.model, "--flow", input.flow,
                  "--data", input.data, "--latents", input.latents, "--classifier", input.classifier,
                  "--out", output[0], "--device", params.device], log, threads, resources)
