"""Pulumi programs the toolkit runs through the Automation API (see the top-level Pulumi.yaml)."""
