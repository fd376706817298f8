"""The pipeline file: loading with line:col, validation, the frozen model, `${{ }}` references."""
