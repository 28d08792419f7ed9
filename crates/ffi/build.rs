//! Gives the shared library a versioned SONAME (`libbackdrop.so.<major>`), taken from the one
//! version of the workspace, so that programs linked against it keep working across compatible
//! releases and refuse an incompatible one.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_owned());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        target_os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbackdrop.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
