//! Gives the shared library a versioned SONAME, taken from the one version of the workspace, so
//! that programs linked against it keep working across compatible releases and refuse an
//! incompatible one.
//!
//! The SONAME carries the part of the version that promises compatibility, by cargo-c's rule
//! (Cargo's semver): `libbackdrop.so.<major>` from 1.0 on, `libbackdrop.so.0.<minor>` for 0.y.z,
//! `libbackdrop.so.0.0.<patch>` for 0.0.z. `install.sh` names the installed files by the same
//! rule and checks that the built library agrees (see "ABI version and SONAME" in the README).

fn main() {
    let part = |name: &str| std::env::var(name).unwrap_or_else(|_| "0".to_owned());
    let (major, minor, patch) = (
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );
    let sover = match (major.as_str(), minor.as_str()) {
        ("0", "0") => format!("0.0.{patch}"),
        ("0", minor) => format!("0.{minor}"),
        (major, _) => major.to_owned(),
    };
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        target_os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbackdrop.so.{sover}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
