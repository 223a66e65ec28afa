# Sample quality: the domain classifier and the FID reference (once per dataset) and the FID / domain Fréchet
# distance of each run.
rule train_classifier:
    input:
        PATHS["data"],
    output:
        PATHS["classifier"],
    params:
        spec=eval_spec("classifier"),
        device=config["device"],
        launcher=get_launcher,
        job=get_job("train_classifier"),
    resources:
        attempt=get_attempt,
    log:
        log_file("train_classifier"),
    benchmark:
        benchmark_file("train_classifier")
    threads: 1  # trained on one thread (launcher-independent; pae/stages/train_classifier.py)
    shell:
        pae_shell("train_classifier --spec {params.spec:q} --data {input:q} --out {output:q} "
                  "--device {params.device:q}")


# The real test images' features and the train-vs-test floor, once per dataset and eval.fid settings but the
# temperatures: every run of the dataset with those settings reads them (pae/eval/sample_quality.py).
rule fid_reference:
    input:
        data=PATHS["data"],
        classifier=PATHS["classifier"],
    output:
        PATHS["fid_reference"],
    params:
        spec=get_fid_reference_spec,
        partial=PATHS["fid_reference_partial"],
        device=config["device"],
        launcher=get_launcher,
        job=get_job("fid_reference"),
    resources:
        attempt=get_attempt,
    log:
        log_file("fid_reference"),
    benchmark:
        benchmark_file("fid_reference")
    threads: 4
    shell:
        pae_shell("fid_reference --spec {params.spec:q} --data {input.data:q} --classifier {input.classifier:q} "
                  "--out {output:q} --partial {params.partial:q} --device {params.device:q}")


rule fid:
    input:
        model=PATHS["model"],
        flow=PATHS["flow"],
        latents=PATHS["latents"],
        data=get_run_file("data"),
        classifier=get_run_file("classifier"),
        reference=get_run_file("fid_reference"),
    output:
        PATHS["fid"],
    params:
        spec=get_run_eval_spec("fid"),
        partial=get_run_file("fid_partial"),
        device=config["device"],
        launcher=get_launcher,
        job=get_job("fid"),
    resources:
        attempt=get_attempt,
    log:
        log_file("fid"),
    benchmark:
        benchmark_file("fid")
    threads: 4
    shell:
        pae_shell("fid --spec {params.spec:q} --model {input.model:q} --flow {input.flow:q} --data {input.data:q} "
                  "--latents {input.latents:q} --classifier {input.classifier:q} --reference {input.reference:q} "
                  "--out {output:q} --partial {params.partial:q} --device {params.device:q}")
