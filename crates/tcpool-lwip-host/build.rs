//! Builds lwIP 2.2.1 (core, IPv4/IPv6, netconn + sockets API, the unix port's
//! pthread `sys_arch.c`) plus this crate's glue, configured by
//! `port/include/lwipopts.h`.
//!
//! Where the lwIP sources come from, in order:
//! 1. `LWIP_SRC_DIR`: a directory holding lwIP's `src/` and
//!    `contrib/ports/unix/` (an lwIP 2.2.x checkout or an unpacked `lwip`
//!    crate);
//! 2. the crates.io package `lwip` 0.4.0, declared in Cargo.toml under a
//!    target that never matches so that it is locked and downloaded but never
//!    compiled. It is found with `cargo metadata`, which also downloads it on
//!    a machine that has not fetched it yet (`cargo build` itself only
//!    downloads packages for the platforms being built).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const LWIP_PACKAGE: &str = "lwip";
const LWIP_VERSION: &str = "0.4.0";

fn main() {
    println!("cargo:rerun-if-env-changed=LWIP_SRC_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=port");

    let lwip = lwip_source_dir();
    check_lwip_tree(&lwip);

    let src = lwip.join("src");
    let unix_port = lwip.join("contrib/ports/unix/port");
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let port = manifest_dir.join("port");

    let mut files = Vec::new();
    for dir in ["core", "core/ipv4", "core/ipv6", "api"] {
        files.extend(c_files(&src.join(dir)));
    }
    files.push(src.join("netif/ethernet.c"));
    files.push(unix_port.join("sys_arch.c"));

    // The headers and defines every C file here is built with.
    let mut base = cc::Build::new();
    base.include(port.join("include"))
        .include(src.join("include"))
        .include(unix_port.join("include"));
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        // sys_arch.c names the tcpip thread with pthread_setname_np.
        base.define("_GNU_SOURCE", None);
    }

    // Our own C (the glue and the raw-API test clients): warnings on and
    // fatal. Built first, so that it comes before lwIP on the link line and
    // the linker meets its references to lwIP before lwIP itself.
    base.clone()
        .files([port.join("glue.c"), port.join("client.c")])
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("tcpool_lwip_glue");

    // Third-party code: built quietly (its warnings are not ours to fix and
    // must not fail a `-D warnings` build).
    base.clone()
        .files(&files)
        .warnings(false)
        .extra_warnings(false)
        .cargo_warnings(false)
        .flag_if_supported("-w")
        .compile("tcpool_lwip");

    if matches!(
        target_os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd"
    ) {
        println!("cargo:rustc-link-lib=pthread");
    }
    println!("cargo:lwip_src={}", lwip.display());
    println!("cargo:include={}", src.join("include").display());
}

/// The lwIP source tree to build.
fn lwip_source_dir() -> PathBuf {
    if let Some(dir) = env::var_os("LWIP_SRC_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("Cargo.toml");
    // Offline first: quick, and it works whenever the package is already in
    // the local registry cache. Only if that fails let cargo go to the
    // network to download it.
    let found = cargo_metadata(&manifest, true).or_else(|offline_err| {
        cargo_metadata(&manifest, false)
            .map_err(|online_err| format!("offline: {offline_err}\nonline: {online_err}"))
    });
    match found {
        Ok(dir) => dir,
        Err(e) => panic!(
            "tcpool-lwip-host: cannot locate the sources of the `{LWIP_PACKAGE}` {LWIP_VERSION} \
             package with `cargo metadata`; set LWIP_SRC_DIR to an lwIP 2.2.x source tree.\n{e}"
        ),
    }
}

/// Runs `cargo metadata` and returns the directory of the `lwip` package.
fn cargo_metadata(manifest: &Path, offline: bool) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("metadata")
        .arg("--format-version")
        .arg("1")
        .arg("--manifest-path")
        .arg(manifest);
    if offline {
        cmd.arg("--offline");
    }
    let output = cmd
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("parsing cargo metadata output: {e}"))?;
    let packages = json["packages"]
        .as_array()
        .ok_or("cargo metadata: no `packages` array")?;
    packages
        .iter()
        .find(|p| p["name"] == LWIP_PACKAGE && p["version"] == LWIP_VERSION)
        .and_then(|p| p["manifest_path"].as_str())
        .and_then(|m| Path::new(m).parent().map(Path::to_path_buf))
        .ok_or_else(|| format!("cargo metadata does not list {LWIP_PACKAGE} {LWIP_VERSION}"))
}

fn check_lwip_tree(dir: &Path) {
    for needed in [
        "src/include/lwip/sockets.h",
        "src/api/sockets.c",
        "contrib/ports/unix/port/sys_arch.c",
    ] {
        assert!(
            dir.join(needed).is_file(),
            "tcpool-lwip-host: {} is not an lwIP 2.2 source tree (missing {needed})",
            dir.display()
        );
    }
}

fn c_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    files.sort();
    files
}
