"""The ``features.inbox`` section: teams, the default team of each channel account, the
routing rules and the bots that answer first, checked at start-up with every bad value's key
named.

A team's members and leads need a permission on every channel account whose conversations
can reach the team: the accounts naming it as their default team, and those of the rules
choosing it (a rule without an ``account`` condition can match on any account); a Matrix bot
user needs one on the accounts whose conversations it answers first. Business
hours are kept as written (``TeamConfig.hours_raw``) for ``hours.parse_business_hours``."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ...config import Config
from ...connector import ConfigError
from ...types import AccountID
from ..welcome import MAX_TEXT
from .canned import CODE, PREFIX, placeholder_error

_E = TypeVar("_E", bound=enum.StrEnum)
SECTION = "features.inbox"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MXID = re.compile(r"^@[^:\s]+:\S+$")
_ROOM = re.compile(r"^[#!][^:\s]+:\S+$")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")
_DURATION = re.compile(r"^(\d+[smhd])+$")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 366 * 86400
REPLY_KINDS = ("welcome", "away", "reopened")
DEFAULT_LANGUAGE = "default"
DEFAULT_AWAY_INTERVAL = 12 * 3600
DEFAULT_TICK = 30
"""Seconds between two runs of the inbox's periodic job (snoozes, waiting conversations)."""
CONDITIONS = ("account", "to", "start", "keywords", "language", "field")
_TEAM_KEYS = (
    "room", "members", "leads", "assignment", "limit", "invite", "waiting_limit",
    "resolve_idle", "hours", "replies", "away_interval", "canned", "bot",
)  # fmt: skip
BOT_KINDS = ("matrix_user", "url")
_BOT_KEYS = ("matrix_user", "url", "secret", "timeout", "handover_notice")
_URL = re.compile(r"^https?://[^/\s?#]+(/\S*)?$")
DEFAULT_BOT_TIMEOUT = 10
MAX_BOT_TIMEOUT = 60
"""A webhook bot is asked inside the conversation's ordering domain: it holds nothing longer."""


class AssignmentMode(enum.StrEnum):
    MANUAL = "manual"
    """Members claim conversations themselves."""
    ROUND_ROBIN = "round_robin"
    """In turn, skipping members who are away or at their limit."""
    LEAST_OPEN = "least_open"
    """To the available member with the fewest open conversations."""


class InvitePolicy(enum.StrEnum):
    ASSIGNEE = "assignee"
    """The assignee and the team's leads are invited to a conversation's room."""
    TEAM = "team"
    """Every member and lead is invited."""


@dataclass(frozen=True)
class TeamConfig:
    name: str
    room: str | None
    """The team room's alias (or ID); None: the bridge creates one."""
    members: tuple[str, ...]
    leads: tuple[str, ...]
    mode: AssignmentMode = AssignmentMode.MANUAL
    limit: int | None = None
    """Open conversations per member; None: no limit."""
    invite: InvitePolicy = InvitePolicy.ASSIGNEE
    waiting_limit: int | None = None
    """Seconds a conversation may wait before the team room is told; None: never."""
    resolve_idle: int | None = None
    """Seconds of idleness after which a conversation is resolved; None: never."""
    hours_raw: Any = None
    """The ``hours`` mapping as written (None: always open), for ``parse_business_hours``."""
    replies: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Kind (``welcome``, ``away``, ``reopened``) -> language (``default``: the fallback)
    -> text."""
    away_interval: int = DEFAULT_AWAY_INTERVAL
    """Seconds within which a conversation gets at most one away message."""
    canned: Mapping[str, str] = field(default_factory=dict)
    """Short code -> text with ``{customer}``, ``{agent}``, ``{team}``."""
    bot: str | None = None
    """The bot that answers the team's new conversations first (a name in ``bots``)."""

    @property
    def staff(self) -> tuple[str, ...]:
        """Members and leads, each once."""
        return tuple(dict.fromkeys((*self.members, *self.leads)))

    def reply(self, kind: str, language: str | None) -> str | None:
        """The automatic reply of ``kind`` in ``language`` (``de-AT`` falls back to ``de``,
        then to ``default``), or None when the team has none."""
        texts = self.replies.get(kind)
        if not texts:
            return None
        if language:
            tag = language.replace("_", "-").lower()
            for candidate in (tag, tag.split("-", 1)[0]):
                if candidate in texts:
                    return texts[candidate]
        return texts.get(DEFAULT_LANGUAGE)


@dataclass(frozen=True)
class FieldCondition:
    path: tuple[str, ...]
    """A dotted path into the webhook payload's fields, split."""
    equals: str | int | float | bool


@dataclass(frozen=True)
class Rule:
    """A routing rule: every condition it has must hold for its ``team`` to be chosen."""

    team: str
    account: AccountID | None = None
    to: tuple[str, ...] = ()
    """Addresses the customer wrote to, lower case; any one matches."""
    start: str | None = None
    """A Telegram ``/start`` payload or WhatsApp click-to-chat text, lower case."""
    keywords: tuple[str, ...] = ()
    """Words or phrases in the first message, lower case; any one matches as whole words."""
    language: str | None = None
    """A language tag, lower case with ``-``; ``de`` also matches ``de-AT``."""
    field_match: FieldCondition | None = None
    """The ``field`` condition: a value in a webhook payload."""


@dataclass(frozen=True)
class BotConfig:
    """A bot answering first: a Matrix user invited to the room, or (``url``) an in-house
    system asked over the webhook connector's signed protocol."""

    name: str
    matrix_user: str | None = None
    url: str | None = None
    secret: str = ""
    timeout: float = DEFAULT_BOT_TIMEOUT
    """Seconds a webhook bot has to answer, else the conversation goes to the humans."""
    handover_notice: str | None = None
    """Sent to the customer when the bot hands the conversation over; None: nothing."""


@dataclass(frozen=True)
class InboxConfig:
    teams: Mapping[str, TeamConfig]
    accounts: Mapping[AccountID, str]
    """Channel account -> its default team."""
    rules: tuple[Rule, ...]
    tick: int = DEFAULT_TICK
    """Seconds between two runs of the periodic job (``tick``; tests shorten it)."""
    bots: Mapping[str, BotConfig] = field(default_factory=dict)
    account_bots: Mapping[AccountID, str] = field(default_factory=dict)
    """Channel account -> the bot answering its new conversations (before the team's)."""

    def bot_for(self, account: str, team: str) -> BotConfig | None:
        """The bot that answers a new conversation of ``account`` routed to ``team``."""
        config = self.teams.get(team)
        name = self.account_bots.get(AccountID(account)) or (config.bot if config else None)
        return None if name is None else self.bots.get(name)


def parse_inbox_config(section: Any, config: Config) -> InboxConfig | None:
    """The inbox options, or None when the section is absent; raises ``ConfigError``."""
    if section is None:
        return None
    _check_mapping(
        section, SECTION, ("teams", "accounts", "routing", "tick", "bots", "account_bots")
    )
    teams_section = section.get("teams")
    if not isinstance(teams_section, Mapping) or not teams_section:
        raise ConfigError(f"{SECTION}.teams", "must map team names to their settings")
    teams = {
        str(name): _team(str(name), value, f"{SECTION}.teams.{name}", config)
        for name, value in teams_section.items()
    }
    accounts = _accounts(section.get("accounts"), teams, config)
    rules = _rules(section.get("routing"), teams, config)
    bots = _bots(section.get("bots"))
    account_bots = _account_bots(section.get("account_bots"), bots, config)
    for name, team in teams.items():
        if team.bot is not None:
            _check_bot(team.bot, f"{SECTION}.teams.{name}.bot", bots)
    reach = _reach(teams, accounts, rules, config)
    _check_permissions(teams, reach, config)
    _check_bot_permissions(teams, reach, bots, account_bots, config)
    _check_one_welcome(teams, reach, config)
    tick = section.get("tick")
    return InboxConfig(
        teams=teams,
        accounts=accounts,
        rules=rules,
        tick=DEFAULT_TICK if tick is None else parse_duration(tick, f"{SECTION}.tick"),
        bots=bots,
        account_bots=account_bots,
    )


def parse_duration(value: Any, key: str) -> int:
    """Seconds of a duration such as ``90s``, ``30m``, ``12h``, ``7d`` or ``1h30m``."""
    if not isinstance(value, str) or not _DURATION.match(value.strip()):
        raise ConfigError(key, f"must be a duration such as 90s, 30m, 12h or 7d, not {value!r}")
    seconds = sum(
        int(number) * _UNIT[unit] for number, unit in _DURATION_PART.findall(value.strip())
    )
    if not 0 < seconds <= MAX_DURATION:
        raise ConfigError(key, f"must be longer than 0 and at most 366d, not {value!r}")
    return seconds


def _check_mapping(value: Any, key: str, known: tuple[str, ...]) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping")
    for name in value:
        if name not in known:
            raise ConfigError(f"{key}.{name}", f"unknown key (use {', '.join(known)})")


def _team(name: str, section: Any, key: str, config: Config) -> TeamConfig:
    if not _NAME.match(name):
        raise ConfigError(key, "team names may use only letters, digits, '-' and '_'")
    _check_mapping(section, key, _TEAM_KEYS)
    room = section.get("room")
    if room is not None and not (isinstance(room, str) and _ROOM.match(room)):
        raise ConfigError(f"{key}.room", f"must be a room alias (#room:server), not {room!r}")
    bot = section.get("bot")
    if bot is not None and not isinstance(bot, str):
        raise ConfigError(f"{key}.bot", f"must be the name of a bot in bots, not {bot!r}")
    limit = section.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{key}.limit", f"must be a whole number of at least 1, not {limit!r}")
    return TeamConfig(
        name=name,
        room=room,
        members=_users(section.get("members"), f"{key}.members", required=True),
        leads=_users(section.get("leads"), f"{key}.leads", required=False),
        mode=_choice(AssignmentMode, section.get("assignment", "manual"), f"{key}.assignment"),
        limit=limit,
        invite=_choice(InvitePolicy, section.get("invite", "assignee"), f"{key}.invite"),
        waiting_limit=_optional_duration(section.get("waiting_limit"), f"{key}.waiting_limit"),
        resolve_idle=_optional_duration(section.get("resolve_idle"), f"{key}.resolve_idle"),
        hours_raw=section.get("hours"),
        replies=_replies(section.get("replies"), f"{key}.replies"),
        away_interval=_optional_duration(section.get("away_interval"), f"{key}.away_interval")
        or DEFAULT_AWAY_INTERVAL,
        canned=_canned(section.get("canned"), f"{key}.canned", config),
        bot=bot,
    )


def _users(value: Any, key: str, *, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise ConfigError(
            key, "must be a list of Matrix user IDs" + (" (one at least)" * required)
        )
    for user in value:
        if not isinstance(user, str) or not _MXID.match(user):
            raise ConfigError(key, f"{user!r} is not a Matrix user ID (@user:server)")
    if len(set(value)) != len(value):
        raise ConfigError(key, "names a user twice")
    return tuple(value)


def _choice(kind: type[_E], value: Any, key: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        choices = " | ".join(member.value for member in kind)
        raise ConfigError(key, f"must be one of {choices}, not {value!r}") from None


def _optional_duration(value: Any, key: str) -> int | None:
    return None if value is None else parse_duration(value, key)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise ConfigError(key, f"must be a text of 1 to {MAX_TEXT} characters")
    return value


def _replies(section: Any, key: str) -> dict[str, dict[str, str]]:
    if section is None:
        return {}
    _check_mapping(section, key, REPLY_KINDS)
    replies: dict[str, dict[str, str]] = {}
    for kind, texts in section.items():
        kind_key = f"{key}.{kind}"
        if isinstance(texts, str):
            texts = {DEFAULT_LANGUAGE: texts}
        if not isinstance(texts, Mapping) or DEFAULT_LANGUAGE not in texts:
            raise ConfigError(
                kind_key, "must map languages to texts, with a 'default' text for the others"
            )
        replies[kind] = {}
        for language, text in texts.items():
            language_key = f"{kind_key}.{language}"
            if language != DEFAULT_LANGUAGE and not _LANGUAGE.match(str(language)):
                raise ConfigError(language_key, "must be a language tag (de, pt-BR) or default")
            replies[kind][str(language).replace("_", "-").lower()] = _text(text, language_key)
    return replies


def _canned(section: Any, key: str, config: Config) -> dict[str, str]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(key, "must map short codes to texts")
    canned: dict[str, str] = {}
    for code, text in section.items():
        code_key = f"{key}.{code}"
        if not CODE.match(str(code)):
            raise ConfigError(
                code_key, "codes use lower-case letters, digits, '-' and '_' (32 at most)"
            )
        if PREFIX + str(code) == config.command_prefix:
            raise ConfigError(code_key, f"{PREFIX}{code} is the bot's command prefix")
        error = placeholder_error(_text(text, code_key))
        if error:
            raise ConfigError(code_key, error)
        canned[str(code)] = text
    return canned


def _accounts(
    section: Any, teams: Mapping[str, TeamConfig], config: Config
) -> dict[AccountID, str]:
    return _by_account(
        section, "accounts", "team names", lambda team, key: _check_team(team, key, teams), config
    )


def _by_account(
    section: Any, name: str, what: str, check: Callable[[Any, str], None], config: Config
) -> dict[AccountID, str]:
    """The ``name`` mapping of channel accounts to ``what`` (each value ``check``-ed)."""
    key = f"{SECTION}.{name}"
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(key, f"must map channel accounts to {what}")
    mapping: dict[AccountID, str] = {}
    for account, value in section.items():
        account_key = f"{key}.{account}"
        _check_account(account, account_key, config)
        check(value, account_key)
        mapping[AccountID(str(account))] = value
    return mapping


def _check_account(account: Any, key: str, config: Config) -> None:
    if account not in config.channels:
        raise ConfigError(key, f"there is no channel account {account!r}")


def _check_team(team: Any, key: str, teams: Mapping[str, TeamConfig]) -> None:
    if team not in teams:
        raise ConfigError(key, f"there is no team {team!r} (teams: {', '.join(teams)})")


def _rules(section: Any, teams: Mapping[str, TeamConfig], config: Config) -> tuple[Rule, ...]:
    key = f"{SECTION}.routing"
    if section is None:
        return ()
    if not isinstance(section, list):
        raise ConfigError(key, "must be a list of rules (first match wins)")
    return tuple(
        _rule(value, f"{key}.{index}", teams, config) for index, value in enumerate(section)
    )


def _rule(section: Any, key: str, teams: Mapping[str, TeamConfig], config: Config) -> Rule:
    _check_mapping(section, key, ("team", *CONDITIONS))
    if "team" not in section:
        raise ConfigError(f"{key}.team", "is missing")
    _check_team(section["team"], f"{key}.team", teams)
    if not any(condition in section for condition in CONDITIONS):
        raise ConfigError(key, f"needs a condition ({', '.join(CONDITIONS)})")
    account = section.get("account")
    if "account" in section:
        _check_account(account, f"{key}.account", config)
    to = _strings(section.get("to"), f"{key}.to")
    for address in to:
        if not _ADDRESS.match(address):
            raise ConfigError(f"{key}.to", f"{address!r} is not a mail address")
    start = section.get("start")
    if "start" in section and (not isinstance(start, str) or not start.strip()):
        raise ConfigError(f"{key}.start", "must be a text")
    language = section.get("language")
    if "language" in section and not (isinstance(language, str) and _LANGUAGE.match(language)):
        raise ConfigError(
            f"{key}.language", f"must be a language tag (de, pt-BR), not {language!r}"
        )
    return Rule(
        team=section["team"],
        account=None if account is None else AccountID(account),
        to=to,
        start=start.strip().lower() if isinstance(start, str) else None,
        keywords=_strings(section.get("keywords"), f"{key}.keywords"),
        language=language.replace("_", "-").lower() if isinstance(language, str) else None,
        field_match=_field(section.get("field"), f"{key}.field") if "field" in section else None,
    )


def _strings(value: Any, key: str) -> tuple[str, ...]:
    """A text or a list of texts, lower case; absent: none."""
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ConfigError(key, "must be a text or a list of texts")
    for text in values:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(key, f"{text!r} is not a text")
    return tuple(text.strip().lower() for text in values)


def _field(section: Any, key: str) -> FieldCondition:
    _check_mapping(section, key, ("path", "equals"))
    path = section.get("path")
    if not isinstance(path, str) or not all(path.split(".")):
        raise ConfigError(f"{key}.path", f"must be a dotted path (metadata.topic), not {path!r}")
    equals = section.get("equals")
    if not isinstance(equals, str | int | float | bool):
        raise ConfigError(f"{key}.equals", "must be a text, a number or true/false")
    return FieldCondition(path=tuple(path.split(".")), equals=equals)


def _reach(
    teams: Mapping[str, TeamConfig],
    accounts: Mapping[AccountID, str],
    rules: tuple[Rule, ...],
    config: Config,
) -> dict[str, set[AccountID]]:
    """Team -> the channel accounts whose conversations can reach it."""
    reach: dict[str, set[AccountID]] = {name: set() for name in teams}
    for account, default in accounts.items():
        reach[default].add(account)
    for rule in rules:
        reach[rule.team].update([rule.account] if rule.account else config.channels)
    return reach


def _check_permissions(
    teams: Mapping[str, TeamConfig], reach: Mapping[str, set[AccountID]], config: Config
) -> None:
    for name, team in teams.items():
        for role, users in (("members", team.members), ("leads", team.leads)):
            for user in users:
                _check_permission(
                    user, reach[name], f"{SECTION}.teams.{name}.{role}",
                    f"whose conversations reach team {name}", config,
                )  # fmt: skip


def _check_one_welcome(
    teams: Mapping[str, TeamConfig], reach: Mapping[str, set[AccountID]], config: Config
) -> None:
    """A customer is welcomed once: not by ``features.welcome`` and a team's reply both."""
    welcomed = config.features.get("welcome")
    if not isinstance(welcomed, Mapping):
        return
    for name, team in teams.items():
        both = sorted(reach[name] & {AccountID(str(account)) for account in welcomed})
        if team.replies.get("welcome") and both:
            raise ConfigError(
                f"{SECTION}.teams.{name}.replies.welcome",
                f"features.welcome greets the customers of {both[0]} already, whose"
                f" conversations reach team {name}: keep one of the two",
            )


def _check_permission(
    user: str, accounts: set[AccountID], key: str, why: str, config: Config
) -> None:
    for account in sorted(accounts):
        if config.permission_level(user, account) == "none":
            raise ConfigError(
                key, f"{user} has no permission on {account}, {why} (grant it in permissions)"
            )


def _bots(section: Any) -> dict[str, BotConfig]:
    key = f"{SECTION}.bots"
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(key, "must map bot names to a matrix_user or a url and secret")
    return {str(name): _bot(str(name), value, f"{key}.{name}") for name, value in section.items()}


def _bot(name: str, section: Any, key: str) -> BotConfig:
    if not _NAME.match(name):
        raise ConfigError(key, "bot names may use only letters, digits, '-' and '_'")
    _check_mapping(section, key, _BOT_KEYS)
    kinds = [kind for kind in BOT_KINDS if kind in section]
    if len(kinds) != 1:
        raise ConfigError(
            key, "needs exactly one of matrix_user (a Matrix bot user) or url (a webhook bot)"
        )
    notice = section.get("handover_notice")
    handover_notice = None if notice is None else _text(notice, f"{key}.handover_notice")
    if kinds == ["matrix_user"]:
        for extra in ("secret", "timeout"):
            if extra in section:
                raise ConfigError(f"{key}.{extra}", "belongs to a webhook bot (url), not here")
        user = section["matrix_user"]
        if not isinstance(user, str) or not _MXID.match(user):
            raise ConfigError(
                f"{key}.matrix_user", f"{user!r} is not a Matrix user ID (@user:server)"
            )
        return BotConfig(name, matrix_user=user, handover_notice=handover_notice)
    url = section["url"]
    if not isinstance(url, str) or not _URL.match(url):
        raise ConfigError(f"{key}.url", f"must be an http(s) URL, not {url!r}")
    secret = section.get("secret")
    if not isinstance(secret, str) or not secret.strip():
        raise ConfigError(f"{key}.secret", "must be the shared secret that signs the requests")
    timeout = _optional_duration(section.get("timeout"), f"{key}.timeout")
    if timeout is not None and timeout > MAX_BOT_TIMEOUT:
        raise ConfigError(f"{key}.timeout", f"must be at most {MAX_BOT_TIMEOUT}s")
    return BotConfig(
        name, url=url, secret=secret, timeout=timeout or DEFAULT_BOT_TIMEOUT,
        handover_notice=handover_notice,
    )  # fmt: skip


def _check_bot(name: Any, key: str, bots: Mapping[str, BotConfig]) -> None:
    if name not in bots:
        known = ", ".join(bots) or "none configured"
        raise ConfigError(key, f"there is no bot {name!r} (bots: {known})")


def _account_bots(
    section: Any, bots: Mapping[str, BotConfig], config: Config
) -> dict[AccountID, str]:
    return _by_account(
        section, "account_bots", "bot names", lambda bot, key: _check_bot(bot, key, bots), config
    )


def _check_bot_permissions(
    teams: Mapping[str, TeamConfig],
    reach: Mapping[str, set[AccountID]],
    bots: Mapping[str, BotConfig],
    account_bots: Mapping[AccountID, str],
    config: Config,
) -> None:
    """A Matrix bot user needs a permission on every account it serves: those naming it in
    ``account_bots`` and those reaching a team naming it (unless their own bot answers)."""
    for name, bot in bots.items():
        if bot.matrix_user is None:
            continue
        served = {account for account, named in account_bots.items() if named == name}
        for team, settings in teams.items():
            if settings.bot == name:
                served |= {account for account in reach[team] if account not in account_bots}
        _check_permission(
            bot.matrix_user, served, f"{SECTION}.bots.{name}.matrix_user",
            "whose conversations it answers first", config,
        )  # fmt: skip
