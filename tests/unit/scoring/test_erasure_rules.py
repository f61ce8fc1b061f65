"""Which leads an erasure takes (a phone is weak: a switchboard serves many people)."""

from services.scoring.domain.erasure import leads_to_erase, links_after_erasure

DANA = ("email:dana@example.com", "phone:+14155550100")
SAM = ("email:sam@example.com", "phone:+14155550100")  # same switchboard, another person
BADGE_ONLY = ("phone:+14155550100",)
LINKS = {
    "email:dana@example.com": ("ld_dana",),
    "email:sam@example.com": ("ld_sam",),
    "phone:+14155550100": ("ld_sam", "ld_phone_only", "ld_dana"),
}
IDS = {"ld_dana": DANA, "ld_sam": SAM, "ld_phone_only": BADGE_ONLY}


def test_erasing_by_email_takes_every_lead_the_email_points_at():
    assert leads_to_erase(keys=["email:dana@example.com"], links=LINKS, identifiers=IDS) == {"ld_dana"}


def test_erasing_by_phone_leaves_other_people_who_gave_the_same_switchboard_number():
    erased = leads_to_erase(keys=["phone:+14155550100"], links=LINKS, identifiers=IDS)
    assert erased == {"ld_phone_only"}


def test_erasing_by_email_and_phone_takes_the_persons_lead_and_phone_only_captures_not_a_colleagues():
    erased = leads_to_erase(keys=list(DANA), links=LINKS, identifiers=IDS)
    assert erased == {"ld_dana", "ld_phone_only"}


def test_named_lead_ids_are_erased_and_unknown_ones_ignored():
    assert leads_to_erase(keys=[], links=LINKS, identifiers=IDS, lead_ids=["ld_sam", "ld_gone"]) == {"ld_sam"}


def test_an_erased_lead_leaves_every_link_and_a_link_to_nobody_goes():
    after = links_after_erasure(LINKS, {"ld_dana", "ld_phone_only"})
    assert after == {"email:dana@example.com": (), "phone:+14155550100": ("ld_sam",)}
