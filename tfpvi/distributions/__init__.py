"""Distributions that tfpvi adds to TFP's: likelihoods for discrete pixel intensities."""

from tfpvi.distributions.discretized_logistic import DiscretizedLogistic, log_bin_probability
from tfpvi.distributions.discretized_logistic_mixture import DiscretizedLogisticMixture
from tfpvi.distributions.pixelcnn_mixture import PixelCNNMixture

__all__ = ["DiscretizedLogistic", "DiscretizedLogisticMixture", "PixelCNNMixture", "log_bin_probability"]
