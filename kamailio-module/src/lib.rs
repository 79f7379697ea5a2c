//! privateness.so for Kamailio (issue: "Kamailio module privateness.so").
//!
//! Not built yet. This crate will be a thin FFI shell over `ness-core`: the
//! `module_exports` tables, script and KEMI functions (`emc_enum_query()` …), RPC
//! commands and panic fences, and nothing else. See shared/docs/kamailio-abi.md.
