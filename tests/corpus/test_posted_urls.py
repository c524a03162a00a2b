"""Posted URLs are kept as written in the links output (`posted_urls`), but never with credentials in them."""

import pytest

from corpus.link_rules import LinkConfig, LinkRules
from corpus.submissions import Submission
from corpus.urls import without_userinfo


@pytest.mark.parametrize(
    "raw,kept",
    [
        ("http://user:pass@example.com/a?b=1#c", "http://example.com/a?b=1#c"),
        ("https://token@Example.COM:8443/x/", "https://Example.COM:8443/x/"),
        ("http://a@b:c@example.com/", "http://example.com/"),  # an unescaped '@' in the password
        ("http://[::1]/", "http://[::1]/"),
        ("http://example.com/mail@me", "http://example.com/mail@me"),  # '@' in the path is no userinfo
        ("http://example.com/?to=a@b.c", "http://example.com/?to=a@b.c"),
        ("  HTTP://u:p@example.com  ", "  HTTP://example.com  "),
        ("mailto:me@example.com", "mailto:me@example.com"),
    ],
)
def test_without_userinfo(raw, kept):
    assert without_userinfo(raw) == kept


def test_a_posted_url_with_credentials_is_kept_without_them():
    rules = LinkRules(LinkConfig())
    url, contribution = rules.apply(
        Submission("x1", "https://alice:s3cret@example.com/page/", 5, 1_500_000_000, "test", False, False)
    )
    assert url == "https://example.com/page"
    assert contribution.posted_url == "https://example.com/page/"
