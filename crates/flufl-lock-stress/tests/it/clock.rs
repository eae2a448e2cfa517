//! Adversarial review (issue 12): clocks that stop or step, and coarse timestamps.
