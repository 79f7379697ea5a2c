//! The fake Asterisk (src/bin/fake-asterisk.rs) exports the `ast_*` API for the
//! module it dlopens: its symbols must be in the dynamic symbol table.
fn main() {
    println!("cargo:rustc-link-arg-bin=fake-asterisk=-rdynamic");
}
