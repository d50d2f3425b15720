//! Refuses builds with control-flow protection (`-Z cf-protection`): sylvan's
//! switch moves between machine stacks without switching CET shadow stacks,
//! and its jump targets carry no `endbr64` (see the docs of `src/switch`).

use std::env;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        return;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    // `-Zcf-protection=full`, or `-Z` and `cf-protection=...` as two flags.
    let protection = flags.iter().enumerate().find_map(|(i, f)| {
        let value =
            f.strip_prefix("-Zcf-protection=")
                .or_else(|| match (*f, flags.get(i + 1)) {
                    ("-Z", Some(next)) => next.strip_prefix("cf-protection="),
                    _ => None,
                })?;
        (value != "none").then_some(value)
    });
    if let Some(value) = protection {
        panic!(
            "sylvan-runtime does not support control-flow protection \
             (-Z cf-protection={value}): its greenlet switch moves between stacks without \
             switching CET shadow stacks, and its jump targets carry no endbr64. Build without \
             -Z cf-protection (or with -Z cf-protection=none)."
        );
    }
}
