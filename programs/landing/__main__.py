"""Entry point when the CLI runs this folder as the program of the top-level Pulumi.yaml.

The program itself ships inside the toolkit's package (`toolkit.landing_program`), which runs
it inline (`toolkit.landing`); this folder is only the Pulumi project's door to it, and is not
part of the installed package. Run from here, the program takes the same inputs from stack
config: `landing:landing` (a `Landing` as its `landed` output writes it) and
`pulumiservice:apiUrl` / `pulumiservice:accessToken` (secret) for the provider.
"""

import pulumi

from toolkit.landing_program.model import Landing
from toolkit.landing_program.program import landing_program

provider_config = pulumi.Config("pulumiservice")
landing_program(
    Landing.from_output(pulumi.Config("landing").require_object("landing")),
    api_url=provider_config.require("apiUrl"),
    access_token=provider_config.require_secret("accessToken"),
)
