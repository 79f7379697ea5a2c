//! Kamailio refuses a module whose `module_version` and `module_flags` strings are
//! not byte for byte its own (ksr_version_control), and then the whole server
//! exits. Take them from the installed `kamailio -v`, or from
//! KAMAILIO_MODULE_VERSION / KAMAILIO_MODULE_FLAGS, and stop the build with a
//! clear message if neither is available.

use std::process::Command;

fn from_kamailio() -> Option<(String, String)> {
    let candidates = match std::env::var("KAMAILIO_BIN") {
        Ok(b) => vec![b],
        Err(_) => vec!["kamailio".to_owned(), "/usr/sbin/kamailio".to_owned(), "/usr/local/sbin/kamailio".to_owned()],
    };
    for bin in candidates {
        let Ok(out) = Command::new(&bin).arg("-v").output() else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut version = None;
        let mut flags = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("version: ") {
                // The line ends with a space that is not part of the module string.
                version = Some(v.trim_end().to_owned());
            } else if let Some(f) = line.strip_prefix("flags: ") {
                flags = Some(f.trim_end().to_owned());
            }
        }
        if let (Some(v), Some(f)) = (version, flags) {
            println!("cargo:rerun-if-changed={bin}");
            return Some((v, f));
        }
    }
    None
}

fn main() {
    for var in ["KAMAILIO_MODULE_VERSION", "KAMAILIO_MODULE_FLAGS", "KAMAILIO_BIN"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=/usr/sbin/kamailio");
    let env_version = std::env::var("KAMAILIO_MODULE_VERSION").ok();
    let env_flags = std::env::var("KAMAILIO_MODULE_FLAGS").ok();
    let (version, flags) = match (env_version, env_flags) {
        (Some(v), Some(f)) => (v, f),
        (v, f) => match from_kamailio() {
            Some((kv, kf)) => (v.unwrap_or(kv), f.unwrap_or(kf)),
            None => {
                eprintln!(
                    "\nerror: cannot tell which Kamailio to build privateness.so for.\n\
                     Install Kamailio (Debian: apt-get install kamailio) so that `kamailio -v` works,\n\
                     or set KAMAILIO_MODULE_VERSION and KAMAILIO_MODULE_FLAGS to the `version:` and\n\
                     `flags:` lines of `kamailio -v` on the target machine (see kamailio-module/README.md).\n"
                );
                std::process::exit(1);
            }
        },
    };
    for (name, value) in [("version", &version), ("flags", &flags)] {
        if value.is_empty() || value.contains(['\0', '\n']) {
            eprintln!("error: the Kamailio module {name} string {value:?} is empty or contains NUL/newline");
            std::process::exit(1);
        }
    }
    println!("cargo:rustc-env=NESS_KAMAILIO_MODULE_VERSION={version}");
    println!("cargo:rustc-env=NESS_KAMAILIO_MODULE_FLAGS={flags}");
}
