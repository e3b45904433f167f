"""Distributions that tfpvi adds to TFP's: likelihoods for discrete pixel intensities."""

from tfpvi.distributions.discretized_logistic import DiscretizedLogistic, log_bin_probability
from tfpvi.distributions.discretized_logistic_mixture import DiscretizedLogisticMixture

__all__ = ["DiscretizedLogistic", "DiscretizedLogisticMixture", "log_bin_probability"]
