"""The landing program: what a claim leaves on record in the destination org.

It ships inside the toolkit's package, so an install claims the one top-level name `toolkit`.
`toolkit.landing` runs it inline through the Automation API; `programs/landing` in the
repository is the entry of the top-level Pulumi.yaml, for running it with `pulumi up`.
"""
