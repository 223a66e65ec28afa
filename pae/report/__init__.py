"""Report: the tables (CSV), figures and report.md of an experiment, from the files the other stages wrote."""

TABLES = ("runs", "table1", "table2", "samplers", "ood", "posterior", "impute", "uncertainty")  # results/{exp}/tables/{name}.csv
