//! Helpers shared by the integration tests: OS entropy, the clock, temp dirs and running openssl.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use wasm_pki::OffsetDateTime;

pub type Rng = rand_core::UnwrapErr<getrandom::SysRng>;

pub fn rng() -> Rng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub fn now() -> OffsetDateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

/// A fresh directory under the target dir's tmp, removed at drop.
/// A scratch directory (tempfile's, removed on drop); `.0` is its path.
pub struct TempDir(pub PathBuf, tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let t = tempfile::Builder::new()
            .prefix(&format!("wasm-pki-{tag}-"))
            .tempdir()
            .unwrap();
        TempDir(t.path().to_path_buf(), t)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}

/// Output of an openssl run.
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run `openssl` with `args` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Out {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (the README's test command installs it)");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run openssl and require success.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let o = openssl(dir, args);
    assert!(o.ok, "openssl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout + &o.stderr
}

/// openssl makes a key (`genpkey` with `keyopts`) and a CSR for it (`req -new -subj subj` plus
/// `extra`), as `NAME.key` and `NAME.csr` in `dir`; returns the CSR (PEM).
pub fn openssl_csr(
    dir: &TempDir,
    name: &str,
    keyopts: &[&str],
    subj: &str,
    extra: &[&str],
) -> Vec<u8> {
    let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
    openssl_ok(&dir.0, &[&["genpkey", "-out", &key], keyopts].concat());
    let req = ["req", "-new", "-key", &key, "-subj", subj, "-out", &csr];
    openssl_ok(&dir.0, &[&req[..], extra].concat());
    std::fs::read(dir.path(&csr)).unwrap()
}

/// A new key, its verified CSR asking for `identity` only, and options vouching for it.
pub fn request_for(
    alg: wasm_pki::Algorithm,
    identity: wasm_pki::SanName,
    lifetime_secs: Option<u64>,
) -> (
    wasm_pki::KeyPair,
    wasm_pki::ParsedCsr,
    wasm_pki::IssueOptions,
) {
    use wasm_pki::*;
    let key = KeyPair::generate(alg, &mut rng());
    let csr = CsrRequest {
        subject: Subject::default(),
        names: vec![identity.clone()],
    }
    .sign(&key)
    .unwrap();
    let csr = ParsedCsr::parse(csr.der()).unwrap();
    (
        key,
        csr,
        IssueOptions {
            identity: Some(identity),
            lifetime_secs,
            ..Default::default()
        },
    )
}

/// [`request_for`] a DNS name.
pub fn dns_request(
    alg: wasm_pki::Algorithm,
    name: &str,
    lifetime_secs: Option<u64>,
) -> (
    wasm_pki::KeyPair,
    wasm_pki::ParsedCsr,
    wasm_pki::IssueOptions,
) {
    request_for(alg, wasm_pki::SanName::dns(name).unwrap(), lifetime_secs)
}
