// Exposes the wasmtime version (from Cargo.lock) to key the compiled-module cache, and embeds the
// page and the npm package (JS and .wasm) into the binary when pkg/dist has been built
// (scripts/build-pkg.sh). A release build without it fails with what to run; a debug build
// (a contributor's `cargo test`) builds without it and then needs --module.
use std::path::Path;

fn main() {
    // At run time, not env!(): the compiled build script is shared by every checkout that uses
    // the same target directory, and must look at the checkout being built.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("..");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let mut version = "unknown".to_string();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"wasmtime\"" {
            if let Some(v) = lines.next() {
                version = v
                    .trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_string();
            }
            break;
        }
    }
    println!("cargo:rustc-env=WASMTIME_VERSION={version}");

    // The Trustee KBS plugin protocol and the SPIFFE Workload API, compiled by protox (pure
    // Rust, no protoc needed).
    println!("cargo:rerun-if-changed=proto/kbs_plugin.proto");
    println!("cargo:rerun-if-changed=proto/workload.proto");
    let fds = protox::compile(
        ["proto/kbs_plugin.proto", "proto/workload.proto"],
        ["proto"],
    )
    .expect("the .proto files compile");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)
        .expect("the gRPC services are generated");
    println!("cargo:rerun-if-changed=../Cargo.lock");

    println!("cargo:rustc-check-cfg=cfg(embedded_package)");
    let dist = root.join("pkg/dist");
    for f in [
        "pkg/dist/wasm_pki_bg.wasm",
        "pkg/dist/wasm_pki.js",
        "pkg/web.js",
        "pkg/verify.js",
        "www",
    ] {
        println!("cargo:rerun-if-changed=../{f}");
    }
    let built = dist.join("wasm_pki_bg.wasm").is_file() && dist.join("wasm_pki.js").is_file();
    if built {
        println!("cargo:rustc-cfg=embedded_package");
    } else if std::env::var("PROFILE").as_deref() == Ok("release") {
        panic!("pkg/dist/wasm_pki_bg.wasm is missing: run scripts/build-pkg.sh before a release build of the signer (the binary embeds the npm package and its module)");
    } else {
        println!("cargo:warning=pkg/dist is not built: this debug signer embeds no module (run scripts/build-pkg.sh, or pass --module)");
    }
}
