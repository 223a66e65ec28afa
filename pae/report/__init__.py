"""Report: the tables (CSV), figures and report.md of an experiment, from the files the other stages wrote."""

# results/{exp}/tables/{name}.csv
TABLES = ("runs", "table1", "table2", "samplers", "ood", "posterior", "posterior_classes", "impute", "uncertainty")
