//! Adversarial review (issue 12), through the filesystem seam: written by the review tests.
