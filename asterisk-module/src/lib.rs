//! res_privateness.so for Asterisk (issue: "Asterisk module res_privateness.so").
//!
//! Not built yet. This crate will be a thin FFI shell over `ness-core`: the
//! `ast_module_info` and `ast_custom_function` tables for `EMC_ENUM()` and friends,
//! CLI commands and panic fences, and nothing else. See shared/docs/asterisk-abi.md.
