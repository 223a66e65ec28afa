"""Report: the runs table (CSV) and the figures of an experiment, from the files the other stages wrote."""
