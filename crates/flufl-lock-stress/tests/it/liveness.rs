//! Adversarial review (issue 12): holders that look dead but are not, and other users.
