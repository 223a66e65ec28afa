rule encode:
    input:
        model=f"{RES}/{{run}}/model/model.pt",
        data=run_data,
    output:
        f"{RES}/{{run}}/latents.h5",
    params:
        device=config["device"],
        missing=run_missing,
        seed=run_seed,
    log:
        f"{LOGS}/{{run}}/encode.log",
    benchmark:
        f"{BENCH}/{{run}}/encode.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "encode", ["--model", input.model, "--data", input.data, "--out", output[0],
                  "--device", params.device, "--missing", params.missing, "--seed", params.seed], log, threads,
                  resources)
