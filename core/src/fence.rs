//! Panic fences for code called from C (the PBX modules' entry points): run a
//! closure and turn a panic into its message, so the caller can log it and
//! return an error code instead of unwinding into the host, which would abort
//! it. Each module logs through its host's logger (`fence` in its log.rs).

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Run `f`; a panic becomes `Err` with its message (empty if it had none).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(catch(|| -> u8 { panic!("boom {}", 1) }), Err("boom 1".to_owned()));
        assert_eq!(catch(|| -> u8 { panic!("static") }), Err("static".to_owned()));
        assert_eq!(catch(|| -> u8 { std::panic::panic_any(42u32) }), Err(String::new()));
    }
}
