//! Placeholder while story tests compile.
