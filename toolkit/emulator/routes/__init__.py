"""The emulator's HTTP layer: Pulumi Cloud's paths over `ServiceState`, one router per family
of resources, as `state/` keeps one module per domain.

`accounts` (the caller and its default org), `stacks` (stacks, their tags and secrets),
`stack_settings` (a stack's deployment settings, webhooks and schedules),
`updates` (the update lifecycle the `pulumi` CLI drives, export and import, history),
`agents` (agent sign-up and claims), `environments` (ESC), `teams` (teams and org members),
`catalog` (Insights accounts, registry packages) and `control` (the `/_emulator/` knobs).
Each module holds one function that builds its `APIRouter` over a `Service` (`service`:
the state, who is calling, how large a page is); `toolkit.emulator.app` includes them.

Handlers only parse the request, call the state and answer with what
`toolkit.emulator.serializers` makes of the records it returns; the rules live in `state`.
"""
