//! ness-gammu-hook: the RunOnReceive program for gammu-smsd, its durable spool and
//! the forwarder (issue: "SMS pipeline").
//!
//! Not built yet. See shared/docs/gammu.md.
