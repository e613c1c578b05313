"""One router per Mastodon API area."""
