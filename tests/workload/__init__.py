"""The workload program: `pulumi_program` for inline runs, `__main__.py` for directory runs."""
