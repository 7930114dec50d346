"""Entry point when the CLI runs this folder as the program of the top-level Pulumi.yaml.

The program runs in the project's own virtualenv, where the checkout is installed, so the
`programs` package imports as it does in tests.
"""

from programs.workload.workload import pulumi_program

pulumi_program()
