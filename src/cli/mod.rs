//! Command-line flag groups, each converted once into its module's plain settings.

pub(crate) mod alerts;
