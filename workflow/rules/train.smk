# The rolling checkpoint (params.checkpoint) is not a declared output: snakemake deletes outputs before a rerun,
# and the checkpoint must survive to resume an interrupted run.
rule train:
    input:
        data=run_data,
    output:
        model=f"{RES}/{{run}}/model/model.pt",
        history=f"{RES}/{{run}}/model/history.json",
    params:
        spec=train_spec,
        checkpoint=run_checkpoint,
        device=config["device"],
    log:
        f"{LOGS}/{{run}}/train.log",
    benchmark:
        f"{BENCH}/{{run}}/train.tsv"
    threads: 8
    run:
        pae_stage(rule, wildcards, "train", ["--spec", params.spec, "--data", input.data, "--model-out", output.model,
                  "--history-out", output.history, "--checkpoint", params.checkpoint, "--device", params.device],
                  log, threads, resources)
