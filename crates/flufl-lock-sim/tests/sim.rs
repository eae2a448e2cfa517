//! The CI slice of the simulation (filled in below).
