# pae: the whole pipeline as one DAG. Rules live in workflow/rules/; helpers and the run grid in common.smk.
#   snakemake --cores 2                                   # the embedded default (configs/default.yaml)
#   snakemake --cores 2 --configfile configs/other.yaml   # another experiment grid
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another grid (snakemake would otherwise merge the two).
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/configs/default.yaml"


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
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
