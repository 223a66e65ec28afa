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
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m pae fit_flow --spec {params.spec:q} --latents {input}"
        " --out {output.flow} --history-out {output.history} --device {params.device} > {log} 2>&1"
