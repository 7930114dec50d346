"""Which agent accounts a sweep has claimed, by a digest of their claim tokens.

`<runs>/claims/<digest>` names the account a claim token claims and what identifies its run,
written before the claim is made, so that a sweep run again finds that run (finished: the
account is claimed already, and the service is not asked again; unfinished: it continues it)
without the token, which the service no longer knows once it is used. Holds no token: the
digest cannot be turned back into one. With a runs database, the same record is a row of its
`pulumi_claim.claimed`, so that a sweep on another machine finds it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import RunsFolderError
from toolkit.journal.database import (
    SHARED_SCHEMA,
    DatabaseFailure,
    connect_postgres,
    database_unwritable,
)
from toolkit.landing_spec import LandingSpec
from toolkit.private_files import RUNS_DIR_FULL_HINT, make_private_dir, write_private_text

CLAIMS_DIR = "claims"


def token_digest(claim_token: str) -> str:
    """The digest that stands for `claim_token` in the runs folder."""
    return hashlib.sha256(claim_token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ClaimedAccount:
    """The account a claim token claims, into which org, and what else its run's key holds:
    its map's identity and its landing."""

    agent: str
    org: str
    destination_org: str
    map_identity: str
    landing: LandingSpec | None = None


def record_claim(
    runs_dir: Path, digest: str, account: ClaimedAccount, *, database: str | None = None
) -> None:
    """Record that the claim of token `digest` is about to be made."""
    text = json.dumps(
        {
            "agent": account.agent,
            "org": account.org,
            "destinationOrg": account.destination_org,
            "mapIdentity": account.map_identity,
            "landing": account.landing.identity() if account.landing else None,
        },
        sort_keys=True,
    )
    if database is not None:
        _record_in_database(database, digest, text)
        return
    folder = runs_dir / CLAIMS_DIR
    try:
        make_private_dir(folder)
        write_private_text(folder / digest, text)
    except OSError as error:
        raise RunsFolderError(
            f"cannot record the claim in {folder}: {error.strerror or error}",
            hint=RUNS_DIR_FULL_HINT,
        ) from None


def find_claim(
    runs_dir: Path, digest: str, *, database: str | None = None
) -> ClaimedAccount | None:
    """The claim recorded for token `digest`, if any (an unreadable record counts as none)."""
    try:
        if database is not None:
            text = _found_in_database(database, digest)
            if text is None:
                return None
        else:
            text = (runs_dir / CLAIMS_DIR / digest).read_text(encoding="utf-8")
        document = json.loads(text)
        landing = document.get("landing")
        return ClaimedAccount(
            agent=str(document["agent"]),
            org=str(document["org"]),
            destination_org=str(document["destinationOrg"]),
            map_identity=str(document["mapIdentity"]),
            landing=None if landing is None else LandingSpec(**landing),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_in_database(database: str, digest: str, text: str) -> None:
    db = connect_postgres(database)
    try:
        db.execute(
            f"INSERT INTO {SHARED_SCHEMA}.claimed (digest, account) VALUES (?, ?)"
            " ON CONFLICT (digest) DO UPDATE SET account = excluded.account",
            (digest, text),
        )
    except DatabaseFailure as error:
        raise database_unwritable(database, error) from None
    finally:
        db.close()


def _found_in_database(database: str, digest: str) -> str | None:
    db = connect_postgres(database)
    try:
        row = db.execute(
            f"SELECT account FROM {SHARED_SCHEMA}.claimed WHERE digest = ?", (digest,)
        ).fetchone()
    finally:
        db.close()
    return None if row is None else str(row[0])
