//! The files the signer serves and runs, embedded at build time so the binary is self-contained:
//! the owner's page (`www/`), the npm package's JS (`pkg/web.js`, `pkg/dist/wasm_pki.js`) and its
//! module (`pkg/dist/wasm_pki_bg.wasm`, also what the sandbox runs). `--www` and `--module`
//! override them from disk; no path of the source checkout is compiled in.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The npm package's module, as built into this binary (absent in a debug build made before
/// `scripts/build-pkg.sh`).
#[cfg(embedded_package)]
pub const EMBEDDED_MODULE: Option<&[u8]> = Some(include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../pkg/dist/wasm_pki_bg.wasm"
)));
/// The npm package's module, as built into this binary (absent in this build).
#[cfg(not(embedded_package))]
pub const EMBEDDED_MODULE: Option<&[u8]> = None;

macro_rules! embed {
    ($rel:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $rel)) as &[u8]
    };
}

const PAGE: &[(&str, &[u8])] = &[
    ("index.html", embed!("www/index.html")),
    ("app.js", embed!("www/app.js")),
    ("keep.js", embed!("www/keep.js")),
    ("style.css", embed!("www/style.css")),
];

#[cfg(embedded_package)]
const PACKAGE: &[(&str, &[u8])] = &[
    ("web.js", embed!("pkg/web.js")),
    ("verify.js", embed!("pkg/verify.js")),
    ("dist/wasm_pki.js", embed!("pkg/dist/wasm_pki.js")),
    ("dist/wasm_pki_bg.wasm", embed!("pkg/dist/wasm_pki_bg.wasm")),
];
#[cfg(not(embedded_package))]
const PACKAGE: &[(&str, &[u8])] = &[
    ("web.js", embed!("pkg/web.js")),
    ("verify.js", embed!("pkg/verify.js")),
];

/// Where the page and the package come from.
#[derive(Clone, Debug, Default)]
pub struct Assets {
    /// Page files from this folder instead of the embedded ones.
    pub www: Option<PathBuf>,
    /// An npm package folder (with `web.js` and `dist/`) to serve instead of the embedded one.
    pub pkg: Option<PathBuf>,
}

impl Assets {
    /// The page file `name` (`index.html`, `app.js`, `keep.js`, `style.css`).
    pub fn page(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        Self::lookup(self.www.as_deref(), PAGE, name)
    }

    /// The package file `name` (`web.js`, `dist/…`).
    pub fn package(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        Self::lookup(self.pkg.as_deref(), PACKAGE, name)
    }

    fn lookup(
        dir: Option<&Path>,
        embedded: &[(&str, &'static [u8])],
        name: &str,
    ) -> Option<Cow<'static, [u8]>> {
        match dir {
            Some(d) => std::fs::read(d.join(name)).ok().map(Cow::Owned),
            None => embedded
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| Cow::Borrowed(*b)),
        }
    }
}

/// The module to run: the file given, or the embedded npm module.
pub fn module_bytes(path: Option<&Path>) -> Result<Cow<'static, [u8]>> {
    match path {
        Some(p) => std::fs::read(p)
            .map(Cow::Owned)
            .with_context(|| format!("reading the module {}", p.display())),
        None => EMBEDDED_MODULE.map(Cow::Borrowed).ok_or_else(|| {
            anyhow::anyhow!(
                "this build embeds no module (pkg/dist was not built when it was compiled): pass --module or set WASM_PKI_MODULE"
            )
        }),
    }
}
