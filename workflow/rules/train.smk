# The rolling checkpoint (params.checkpoint) is not a declared output: snakemake deletes outputs before a rerun,
# and the checkpoint must survive to resume an interrupted run.
rule train:
    input:
        data=get_run_file("data"),
    output:
        model=PATHS["model"],
        history=PATHS["history"],
    params:
        spec=get_train_spec,
        checkpoint=get_run_file("checkpoint"),
        device=config["device"],
        launcher=get_launcher,
        job=get_job("train"),
    resources:
        attempt=get_attempt,
    log:
        log_file("train"),
    benchmark:
        benchmark_file("train")
    threads: 8
    shell:
        pae_shell("train --spec {params.spec:q} --data {input.data:q} --model-out {output.model:q} "
                  "--history-out {output.history:q} --checkpoint {params.checkpoint:q} --device {params.device:q}")
