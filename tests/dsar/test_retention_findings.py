"""Retention honesty (GDPR Art. 5(1)(e)): a category's retention may be given as a number of days,
which is checked when the taxonomy is read and says what the wording says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connectors.taxonomy import TaxonomyError, taxonomy_load

ROOT = Path(__file__).resolve().parents[2]


BAD_RETENTION_DAYS = [(0, "0"), (-30, "-30"), ("30", "'30'"), (30.5, "30.5"), (True, "True"), (None, "None")]


@pytest.mark.parametrize(("days", "shown"), BAD_RETENTION_DAYS, ids=[shown for _, shown in BAD_RETENTION_DAYS])
def test_a_taxonomy_whose_retention_days_is_not_a_whole_number_of_days_above_zero_is_refused(tmp_path, days, shown):
    file = tmp_path / "taxonomy.yaml"
    file.write_text(yaml.safe_dump({"categories": {"video_recordings": {"retention": "30 days", "retention_days": days}}}))
    with pytest.raises(TaxonomyError) as refused:
        taxonomy_load(file)
    assert str(refused.value) == f"{file}: categories.video_recordings.retention_days: must be a whole number of days above 0, not {shown}"


def test_a_taxonomy_may_give_a_categorys_retention_in_days_or_leave_it_out(tmp_path):
    file = tmp_path / "taxonomy.yaml"
    file.write_text("categories:\n  video_recordings: {retention: '30 days', retention_days: 30}\n  content: {retention: 'Until you delete it'}\n")
    categories = taxonomy_load(file)["categories"]
    assert (categories["video_recordings"]["retention_days"], "retention_days" in categories["content"]) == (30, False)


def test_the_demo_taxonomy_gives_in_days_exactly_the_fixed_ages_its_wording_promises():
    categories = taxonomy_load(ROOT / "dsar" / "taxonomy.yaml")["categories"]
    pairs = {category: (info["retention"], info["retention_days"]) for category, info in categories.items() if "retention_days" in info}
    assert pairs == {
        "interactions.device_usage": ("18 months", 548),
        "interactions.browse_history": ("Until you clear it, and at most 90 days", 90),
        "interactions.error_reports": ("90 days", 90),
        "interactions.bot_usage": ("90 days, or until you unlink the add-on", 90),
        "interests": ("Until you remove them or turn off personalisation, and at most 2 years", 730),
        "searches_commands": ("Until you delete them, and at most 18 months", 548),
        "voice": ("Until you delete them, and at most 18 months", 548),
        "text_inking_typing": ("Until you turn the feature off, and at most 12 months", 365),
        "location": ("Exact location: 30 days. Rough location: 12 months", 365),  # the longer: rough locations may be that old
        "other_input": ("Until you turn the feature off, and at most 12 months", 365),
        "video_recordings": ("30 days, for security camera footage and event recordings alike", 30),
        "feedback_ratings": ("3 years, or until you remove a published review", 1095),
    }
