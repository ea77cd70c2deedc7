"""One tracked experiment: training loop, evaluation, teacher reuse and the student run."""
