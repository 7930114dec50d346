"""Entry point when the CLI runs this folder as the program of the top-level Pulumi.yaml.

The toolkit runs the program inline (`toolkit.landing`); run from here, it takes the same
inputs from stack config: `landing:landing` (a `Landing` as its `landed` output writes it) and
`pulumiservice:apiUrl` / `pulumiservice:accessToken` (secret) for the provider.
"""

import pulumi

from programs.landing.model import Landing
from programs.landing.program import landing_program

provider_config = pulumi.Config("pulumiservice")
landing_program(
    Landing.from_output(pulumi.Config("landing").require_object("landing")),
    api_url=provider_config.require("apiUrl"),
    access_token=provider_config.require_secret("accessToken"),
)
