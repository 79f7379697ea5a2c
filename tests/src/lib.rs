//! End-to-end tests of the suite (see tests/tests/).
