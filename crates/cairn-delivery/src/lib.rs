//! Cairn delivery state machine (pure: no I/O, no clock of its own).
