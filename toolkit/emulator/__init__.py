"""A local Pulumi Cloud for tests, demos and rehearsals.

`world` describes a starting state, `state` holds it and enforces the service's rules,
`routes` serve it over Pulumi Cloud's HTTP paths (one router per family of resources, as
`state` has one module per domain), `app` assembles them, and `server` runs that app.
Import the submodules directly; this package imports nothing so that the command line stays
quick.
"""
