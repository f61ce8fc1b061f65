from services.notifier.domain.suppression import Suppression, normalize_address, suppressions_for


def _for(kind, channel="email", bounce_type=None, email="Dana@Example.com ", phone="+1 (415) 555-0100"):
    return suppressions_for(kind=kind, channel=channel, bounce_type=bounce_type, email=email, phone=phone)


def test_an_email_unsubscribe_suppresses_that_email_address_only():
    assert _for("unsubscribed") == [Suppression("email", "dana@example.com", "unsubscribed")]


def test_an_sms_complaint_stops_texts_and_calls_to_that_number():
    assert _for("complained", channel="sms") == [
        Suppression("sms", "+14155550100", "complained"),
        Suppression("phone", "+14155550100", "complained"),
    ]


def test_a_hard_bounce_suppresses_the_email_and_a_soft_bounce_nothing():
    assert _for("email_bounced", bounce_type="hard") == [Suppression("email", "dana@example.com", "hard_bounce")]
    assert _for("email_bounced", bounce_type="soft") == []


def test_opens_clicks_and_replies_suppress_nothing():
    for kind in ("email_opened", "email_clicked", "email_replied", "meeting_booked", "purchased"):
        assert _for(kind) == []


def test_an_unsubscribe_without_an_address_on_its_channel_suppresses_nothing():
    assert _for("unsubscribed", email=None) == []


def test_addresses_compare_case_and_punctuation_insensitively():
    assert normalize_address("email", " Dana@Example.COM") == "dana@example.com"
    assert normalize_address("sms", "+1 (415) 555-0100") == "+14155550100"
    assert normalize_address("slack", "#Sales") == "#Sales"
