"""The indicators a comparison computes, by name (used by the comparison, the claims, the report
and the CLI)."""
from __future__ import annotations

INDICATORS = ("mean_age", "median_age", "age_distribution", "share_aged_18_34",
              "education_distribution", "higher_education", "higher_education_by_age",
              "entrepreneurs_all", "entrepreneurs_employed")
