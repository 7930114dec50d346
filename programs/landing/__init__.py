"""The landing program: what a claim leaves on record in the destination org."""
