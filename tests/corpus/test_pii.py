"""corpus/pii.py: e-mail and public IP addresses replaced by fixed placeholders, and what must stay."""

import pytest

from corpus.pii import EMAIL_PLACEHOLDER, IPV4_PLACEHOLDER, IPV6_PLACEHOLDER, Scrubbed, scrub_pii

REPLACED = [  # (text, scrubbed text, e-mails, IPs)
    ("write to john.doe@gmail.com today", f"write to {EMAIL_PLACEHOLDER} today", 1, 0),
    ("Contact: <Jane.O'Brien+news@mail.example.co.uk>,", f"Contact: <{EMAIL_PLACEHOLDER}>,", 1, 0),
    ("'JOHN@EXAMPLE.ORG' or \"x@y.io\"", f"'{EMAIL_PLACEHOLDER}' or \"{EMAIL_PLACEHOLDER}\"", 2, 0),
    ("mailto:a.b-c@sub.domain.org.", f"mailto:{EMAIL_PLACEHOLDER}.", 1, 0),
    ("dns at 8.8.8.8.", f"dns at {IPV4_PLACEHOLDER}.", 0, 1),
    ("(8.8.4.4:53) and 1.1.1.1", f"({IPV4_PLACEHOLDER}:53) and {IPV4_PLACEHOLDER}", 0, 2),
    ("v6 2001:4860:4860::8888 up", f"v6 {IPV6_PLACEHOLDER} up", 0, 1),
    ("[2a00:1450:4001:82b::200e]:443", f"[{IPV6_PLACEHOLDER}]:443", 0, 1),
    ("full 2607:f8b0:4005:80a:0:0:0:200e", f"full {IPV6_PLACEHOLDER}", 0, 1),
    ("me@x.com from 93.184.216.34", f"{EMAIL_PLACEHOLDER} from {IPV4_PLACEHOLDER}", 1, 1),
]

KEPT = [
    "user at example dot com",  # obfuscated
    "john [at] example [dot] com",
    "npm install lodash@4.17.21",  # a package version, not a domain
    "@someone on twitter, user@localhost",
    "version 1.2.3.4.5 and 10.1.2.3.4",  # more than four parts
    "build 2.0.1.1b and v1.2.3.4",  # inside a word
    "01.2.3.4, 256.1.1.1, 1.2.3",  # leading zero, octet above 255, three parts
    "on 31.12.2019 at 12:30:45",  # date, time
    "mac 00:1A:2B:3C:4D:5E",
    "router 192.168.1.1, localhost 127.0.0.1, 10.0.0.1, 172.16.0.9",  # private: nobody's
    "fe80::1 and ::1 and 2001:db8::1",  # link-local, loopback, documentation
    "std::vector<int> and a::b and Foo::Bar::baz",  # code
    f"{EMAIL_PLACEHOLDER} {IPV4_PLACEHOLDER} {IPV6_PLACEHOLDER}",  # already scrubbed
    "",
]


@pytest.mark.parametrize(("text", "scrubbed", "emails", "ips"), REPLACED)
def test_addresses_are_replaced_and_counted(text, scrubbed, emails, ips):
    assert scrub_pii(text) == Scrubbed(scrubbed, emails, ips)


@pytest.mark.parametrize("text", KEPT)
def test_what_only_looks_like_an_address_stays(text):
    assert scrub_pii(text) == Scrubbed(text, 0, 0)


@pytest.mark.parametrize(("text", "_", "__", "___"), REPLACED)
def test_scrubbing_twice_changes_nothing_and_keeps_the_word_count(text, _, __, ___):
    once = scrub_pii(text).text
    assert scrub_pii(once) == Scrubbed(once, 0, 0)
    assert len(once.split()) == len(text.split())
