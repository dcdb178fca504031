"""Cohorts: the prepared cache, subject-wise splits and sequences of epochs."""

from somna.data.cohort import Cohort, CohortEntry, epoch_dtype, prepare_cohort

__all__ = ["Cohort", "CohortEntry", "epoch_dtype", "prepare_cohort"]
