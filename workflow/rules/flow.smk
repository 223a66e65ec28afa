rule fit_flow:
    input:
        f"{RES}/{{run}}/latents.h5",
    output:
        flow=f"{RES}/{{run}}/flow/flow.pt",
        history=f"{RES}/{{run}}/flow/history.json",
    params:
        spec=flow_spec,
        device=config["device"],
    log:
        f"{LOGS}/{{run}}/fit_flow.log",
    benchmark:
        f"{BENCH}/{{run}}/fit_flow.tsv"
    threads: 4
    run:
        pae_stage(rule, wildcards, "fit_flow", ["--spec", params.spec, "--latents", input[0], "--out", output.flow,
                  "--history-out", output.history, "--device", params.device], log, threads, resources)
