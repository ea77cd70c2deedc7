"""Report stage: regenerates docs/*.md from the MLflow database (the report issue)."""
