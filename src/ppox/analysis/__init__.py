"""Analysis of finished runs: reliability metrics, ablations over seeds, reports."""
