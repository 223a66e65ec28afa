# pae: the whole pipeline as one DAG. Rules live in workflow/rules/; the run grid, paths and input functions in
# common.smk (the logic in pae/config.py). The config comes from --configfile alone; without one, the schema's
# defaults (pae/config.schema.yaml) are the config.
#   snakemake --cores 2 --configfile configs/demo.yaml    # the demo (make demo)
#   snakemake --cores 2 --configfile my.yaml              # another experiment grid
#   snakemake --report report.html [--configfile ...]     # the tables and figures as one HTML file
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/ood.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/impute.smk"
include: "workflow/rules/uncertainty.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
