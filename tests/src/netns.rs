//! Network namespaces a test creates for itself (docs/skywire.md §5 (b)): two
//! "hosts" on one machine, each with only its own loopback, so both can use the
//! same trunk addresses (127.77.0.1 and .2) as two real PBX hosts would. They
//! are joined only through what the test sets up between them (a Unix socket
//! in the filesystem). Creating one needs root and `ip` (iproute2); a test that
//! cannot have them fails and says so.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Proc, require_tool, run};

/// A network namespace, deleted when dropped.
pub struct NetNs {
    pub name: String,
    ip: PathBuf,
}

impl NetNs {
    /// Create `ness-<pid>-<n>-<tag>` with its loopback up.
    pub fn create(tag: &str) -> NetNs {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let ip = require_tool("ip", "iproute2");
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces and must run as root (CI does)");
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ness-{}-{n}-{tag}", std::process::id());
        let out = run(&ip, &["netns", "add", &name], &[], Duration::from_secs(10));
        assert!(out.status.success(), "ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr));
        let ns = NetNs { name, ip };
        let out = run(&ns.ip, &["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"], &[], Duration::from_secs(10));
        assert!(out.status.success(), "lo up in {}: {}", ns.name, String::from_utf8_lossy(&out.stderr));
        ns
    }

    /// Start `program` inside the namespace.
    pub fn start(&self, program: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let program = program.display().to_string();
        let mut all = vec!["netns", "exec", self.name.as_str(), program.as_str()];
        all.extend_from_slice(args);
        let mut p = Proc::start(self.ip.clone(), &all, env);
        p.name = format!("{} (in {})", program.rsplit('/').next().unwrap_or(&program), self.name);
        p
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run(&self.ip, &["netns", "del", &self.name], &[], Duration::from_secs(10));
    }
}
