"""The head of a report, pure: who moves what where, the claim window and how much of it is
left, and the warning when little is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from toolkit.display import utc_minute
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from toolkit.report.view import ReportContext

NO_CLAIM = "no claim: an org-to-org move"
"""Shown instead of an agent and a claim window when no claim token stands behind them."""

CLAIM_WINDOW_WARNING = timedelta(hours=24)
"""Less than this left of the claim window, and the reports warn."""


def header_rows(
    document: AgentClaimResponse, context: ReportContext
) -> tuple[tuple[str, str], ...]:
    header = [
        ("Mode", context.mode),
        ("From → to", f"{context.source_org} → {context.destination_org}"),
        ("Strategy", context.strategy),
    ]
    if context.has_claim:
        agent = document.agent
        agent_text = f"{agent.login}, created {utc_minute(agent.created_at)}"
        if agent.org_name != agent.login:
            agent_text = (
                f"{agent.login} (org {agent.org_name}), created {utc_minute(agent.created_at)}"
            )
        header += [("Agent", agent_text), ("Claim window", _claim_window(document, context))]
    else:
        header.append(("Claim", NO_CLAIM))
    if context.run_id is not None:
        header.append(("Run", context.run_id))
    if context.landing is not None:
        header.append(("Landing", context.landing))
    if context.generated_at is not None:
        header.append(("Generated", utc_minute(context.generated_at)))
    return tuple(header)


def _claim_window(document: AgentClaimResponse, context: ReportContext) -> str:
    """When the claim window closes, and how much of it is left at `generated_at`."""
    closes = f"closes {utc_minute(document.claim_expires_at)}"
    left = _time_left(document, context)
    if left is None:
        return closes
    if left <= timedelta(0):
        return f"{closes} (expired)"
    warning = ": under 24 hours" if left < CLAIM_WINDOW_WARNING else ""
    return f"{closes} ({_duration(left)} left{warning})"


def claim_window_warning(document: AgentClaimResponse, context: ReportContext) -> tuple[str, ...]:
    left = _time_left(document, context)
    if left is None or not timedelta(0) < left < CLAIM_WINDOW_WARNING:
        return ()
    return (
        f"warning: the claim window closes in {_duration(left)} "
        f"({utc_minute(document.claim_expires_at)}); after that the claim token expires and the "
        "agent's account can no longer be claimed: commit before then",
    )


def _time_left(document: AgentClaimResponse, context: ReportContext) -> timedelta | None:
    if not context.has_claim or context.generated_at is None:
        return None
    return _utc(document.claim_expires_at) - _utc(context.generated_at)


def _duration(span: timedelta) -> str:
    """Days and hours, or under a day hours and minutes: "29 d 12 h", "5 h 12 min"."""
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min"


def day(moment: datetime) -> str:
    """The UTC date alone, for table columns where every character counts."""
    return _utc(moment).strftime("%Y-%m-%d")


def _utc(moment: datetime) -> datetime:
    """Aware, in UTC; a naive time is read as UTC already, as the service sends them."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
