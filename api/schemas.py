"""The Mastodon entities as pydantic models, for the OpenAPI document only.

``api.entities`` builds the response bodies as plain dicts (validating them on
every feed read would cost CPU for nothing); these models describe the same
shapes, field for field, and routes declare them with ``responses=`` so the
document says what a client gets. Schemathesis checks in ``make test`` that
every answer conforms (``tests/test_openapi_fuzz.py``), so a field added to an
entity without its model here fails the suite.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.notifications import TYPES

NotificationType = Literal[TYPES]  # type: ignore[valid-type]
Visibility = Literal["public", "unlisted", "private", "direct"]


class Error(BaseModel):
    """Every error body; OAuth endpoints add ``error_description`` (RFC 6749), sign-up adds per-field ``details``."""

    error: str = Field(description="What went wrong, for people (an RFC 6749 error code on OAuth endpoints)")
    error_description: str | None = Field(default=None, description="OAuth endpoints: the human-readable message")
    details: dict[str, list[dict[str, str]]] | None = Field(
        default=None, description="Per-field validation errors, Mastodon's shape"
    )


class Empty(BaseModel):
    """An empty JSON object: the action was done."""


class AccountField(BaseModel):
    name: str
    value: str
    verified_at: datetime | None


class Account(BaseModel):
    id: str
    username: str
    acct: str
    display_name: str
    locked: bool
    bot: bool
    discoverable: bool
    group: bool
    created_at: datetime
    note: str = Field(description="HTML")
    url: str
    uri: str
    avatar: str
    avatar_static: str
    header: str
    header_static: str
    followers_count: int
    following_count: int
    statuses_count: int
    last_status_at: date | None
    emojis: list[dict[str, Any]]
    fields: list[AccountField]


class AccountSource(BaseModel):
    privacy: Visibility
    sensitive: bool
    language: str
    note: str = Field(description="Plain text")
    fields: list[AccountField]
    follow_requests_count: int


class Role(BaseModel):
    id: str
    name: str
    permissions: str
    color: str
    highlighted: bool


class CredentialAccount(Account):
    """The caller's own account, with its editable source."""

    source: AccountSource
    role: Role


class Relationship(BaseModel):
    id: str
    following: bool
    showing_reblogs: bool
    notifying: bool
    languages: list[str] | None
    followed_by: bool
    blocking: bool
    blocked_by: bool
    muting: bool
    muting_notifications: bool
    requested: bool
    requested_by: bool
    domain_blocking: bool
    endorsed: bool
    note: str


class MediaDimensions(BaseModel):
    width: int
    height: int
    size: str
    aspect: float
    frame_rate: str | None = None
    duration: float | None = None
    bitrate: int | None = None


class MediaFocus(BaseModel):
    x: float
    y: float


class MediaMeta(BaseModel):
    """``original`` and ``small`` once processed; ``focus`` when the uploader set one."""

    original: MediaDimensions | None = None
    small: MediaDimensions | None = None
    focus: MediaFocus | None = None


class MediaVariant(BaseModel):
    """A raygram extension: every stored rendition, so clients pick the width they need."""

    type: str
    url: str
    width: int
    height: int


class MediaAttachment(BaseModel):
    id: str
    type: Literal["image", "gifv", "video", "audio", "unknown"]
    url: str | None = Field(description="Signed; null while processing")
    preview_url: str | None
    remote_url: str | None
    preview_remote_url: str | None
    text_url: str | None
    meta: MediaMeta
    description: str | None
    blurhash: str | None
    variants: list[MediaVariant]


class StatusTag(BaseModel):
    name: str = Field(description="Normalized: lower case")
    url: str


class TagHistory(BaseModel):
    day: str = Field(description="UNIX seconds of the UTC day's start")
    uses: str
    accounts: str


class Tag(BaseModel):
    id: str
    name: str = Field(description="Normalized: lower case")
    url: str
    history: list[TagHistory] = Field(description="Seven days, today first")
    following: bool


class Mention(BaseModel):
    id: str
    username: str
    acct: str
    url: str


class Status(BaseModel):
    id: str
    created_at: datetime
    in_reply_to_id: str | None
    in_reply_to_account_id: str | None
    sensitive: bool
    spoiler_text: str
    visibility: Visibility
    language: str | None
    uri: str
    url: str
    replies_count: int
    reblogs_count: int
    favourites_count: int
    edited_at: datetime | None
    favourited: bool
    reblogged: bool
    muted: bool
    bookmarked: bool
    pinned: bool
    content: str = Field(description="HTML")
    text: str = Field(description="The plain-text source")
    filtered: list[dict[str, Any]]
    reblog: Status | None
    application: dict[str, Any] | None
    account: Account
    media_attachments: list[MediaAttachment]
    mentions: list[Mention] = Field(description="Accounts the text mentions; a direct message's audience")
    tags: list[StatusTag]
    emojis: list[dict[str, Any]]
    card: dict[str, Any] | None
    poll: dict[str, Any] | None


class Context(BaseModel):
    ancestors: list[Status]
    descendants: list[Status]


class SearchResults(BaseModel):
    accounts: list[Account]
    statuses: list[Status] = Field(description="Only for a signed-in user: the posts they may see, newest first")
    hashtags: list[dict[str, Any]] = Field(description="Tag entities: id, name, url, history, following")


class Suggestion(BaseModel):
    source: Literal["staff", "past_interactions", "global"] = Field(description="Deprecated: use sources")
    sources: list[
        Literal["featured", "most_followed", "most_interactions", "similar_to_recently_followed", "friends_of_friends"]
    ]
    account: Account


class Conversation(BaseModel):
    id: str
    unread: bool
    accounts: list[Account] = Field(description="The other participants")
    last_status: Status | None


class Notification(BaseModel):
    id: str
    type: NotificationType
    group_key: str
    created_at: datetime
    account: Account
    status: Status | None


class NotificationGroup(BaseModel):
    group_key: str
    notifications_count: int
    type: NotificationType
    most_recent_notification_id: str
    page_min_id: str
    page_max_id: str
    latest_page_notification_at: datetime
    sample_account_ids: list[str]
    status_id: str | None


class GroupedNotificationsResults(BaseModel):
    """Mastodon 4.3's grouped notifications: groups, plus the accounts and statuses they refer to."""

    accounts: list[Account]
    statuses: list[Status]
    notification_groups: list[NotificationGroup]


class UnreadCount(BaseModel):
    count: int


class Marker(BaseModel):
    last_read_id: str
    version: int
    updated_at: datetime


class Markers(BaseModel):
    """Only the timelines asked for (GET) or set (POST) that have a marker."""

    home: Marker | None = None
    notifications: Marker | None = None


class Application(BaseModel):
    id: str
    name: str
    website: str | None
    scopes: list[str]
    redirect_uri: str
    redirect_uris: list[str]


class CredentialApplication(Application):
    """A newly registered app, with the credentials it authenticates with."""

    client_id: str
    client_secret: str
    client_secret_expires_at: int
    vapid_key: str


class Token(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    scope: str
    created_at: int = Field(description="Unix seconds")


# -- instance ---------------------------------------------------------------


class AccountsConfiguration(BaseModel):
    max_featured_tags: int
    max_pinned_statuses: int


class StatusesConfiguration(BaseModel):
    max_characters: int
    max_media_attachments: int
    characters_reserved_per_url: int


class MediaConfiguration(BaseModel):
    supported_mime_types: list[str]
    image_size_limit: int
    image_matrix_limit: int
    video_size_limit: int
    video_frame_rate_limit: int
    video_matrix_limit: int


class PollsConfiguration(BaseModel):
    max_options: int
    max_characters_per_option: int
    min_expiration: int
    max_expiration: int


class InstanceConfiguration(BaseModel):
    accounts: AccountsConfiguration
    statuses: StatusesConfiguration
    media_attachments: MediaConfiguration
    polls: PollsConfiguration


class InstanceV1Urls(BaseModel):
    streaming_api: str


class InstanceV1Stats(BaseModel):
    user_count: int
    status_count: int
    domain_count: int


class InstanceV1(BaseModel):
    uri: str
    title: str
    short_description: str
    description: str
    email: str
    version: str
    urls: InstanceV1Urls
    stats: InstanceV1Stats
    thumbnail: str | None
    languages: list[str]
    registrations: bool
    approval_required: bool
    invites_enabled: bool
    configuration: InstanceConfiguration
    contact_account: Account | None
    rules: list[dict[str, Any]]


class InstanceV2Urls(BaseModel):
    streaming: str


class Translation(BaseModel):
    enabled: bool


class FeedAccess(BaseModel):
    local: Literal["public", "authenticated", "disabled"]
    remote: Literal["public", "authenticated", "disabled"]


class TimelinesAccess(BaseModel):
    live_feeds: FeedAccess
    hashtag_feeds: FeedAccess
    trending_link_feeds: FeedAccess


class InstanceV2Configuration(InstanceConfiguration):
    urls: InstanceV2Urls
    translation: Translation
    timelines_access: TimelinesAccess


class InstanceUsageUsers(BaseModel):
    active_month: int


class InstanceUsage(BaseModel):
    users: InstanceUsageUsers


class Thumbnail(BaseModel):
    url: str


class Registrations(BaseModel):
    enabled: bool
    approval_required: bool
    message: str | None


class ApiVersions(BaseModel):
    mastodon: int


class Contact(BaseModel):
    email: str
    account: Account | None


class InstanceV2(BaseModel):
    domain: str
    title: str
    version: str
    source_url: str
    description: str
    usage: InstanceUsage
    thumbnail: Thumbnail
    languages: list[str]
    configuration: InstanceV2Configuration
    registrations: Registrations
    api_versions: ApiVersions
    contact: Contact
    rules: list[dict[str, Any]]


class Health(BaseModel):
    """``ok`` or ``error: …`` per dependency; ``status`` is ``degraded`` (and the answer a 503) when one is down."""

    status: str
    redis: str
    graph: str
    ray: str


# -- stories (Pixelfed's shapes, ``/api/v1.1/stories/…``) ------------------------------------------------------------


class StoryReply(BaseModel):
    """Pixelfed's acknowledgement of a story action."""

    code: int = Field(description="200")
    msg: str | None = None


class StoryAdded(BaseModel):
    """An uploaded story, ready to publish once ``media_url`` is set (answered with 202 while processing)."""

    code: int
    msg: str
    media_id: str = Field(description="Publish it with `POST /api/v1.1/stories/publish`; the story keeps this id")
    media_url: str | None = Field(description="The 9:16 frame (photos) or the video; null while processing")
    media_type: Literal["photo", "video"]


class StoryPublished(StoryReply):
    id: str = Field(description="The story's id (the upload's media_id)")
    expires_at: datetime = Field(description="Exactly 24 hours after publishing; never shown after it")


class StoryUser(BaseModel):
    id: str
    username: str
    username_acct: str
    avatar: str
    local: bool
    is_author: bool = Field(description="The story's author is the caller")


class StoryNode(BaseModel):
    id: str
    pid: str = Field(description="The author's account id")
    type: Literal["photo", "video"]
    src: str = Field(description="Signed URL, valid until the story expires at the latest")
    preview: str | None = Field(description="The 9:16 frame, or the video's poster in one")
    duration: int = Field(description="Seconds to show it")
    seen: bool
    created_at: datetime
    expires_at: datetime
    can_reply: bool
    can_react: bool


class StoryAuthor(BaseModel):
    """One author's active stories, oldest first."""

    id: str = Field(description='"pfs:" and the author\'s account id')
    user: StoryUser
    nodes: list[StoryNode]
    url: str
    seen: bool = Field(description="Every story of the author was seen by the caller")


class StoryCarousel(BaseModel):
    """The caller's own stories first (``self``, its ``nodes`` empty when there are none), then the accounts they
    follow with active stories: unseen authors before seen ones, each most recent first."""

    self_: StoryAuthor = Field(alias="self")
    nodes: list[StoryAuthor]
