//! Workload attestation on this node, as SPIRE's `unix` attestor does it: the caller is the
//! process at the other end of the Workload API socket (SO_PEERCRED: pid, uid, gid, from the
//! kernel, not from the caller), and its selectors are `unix:uid`, `unix:gid`, `unix:user`,
//! `unix:group`, `unix:supplementary_gid`, `unix:supplementary_group`, `unix:path` (the
//! executable) and `unix:sha256` (of the executable, when it is at most [`MAX_HASHED_BYTES`]).
//! A process that exits and whose pid is reused while we read /proc would lend its successor's
//! facts: the start time is read before and after, and a change refuses the attestation.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Largest executable hashed for `unix:sha256`; a larger one gets no sha256 selector, so an
/// entry that names one does not match.
pub const MAX_HASHED_BYTES: u64 = 1 << 30;
/// Digests kept (by device, inode, size and modification time), so a busy workload's binary is
/// hashed once, not at every call.
const HASH_CACHE: usize = 1024;

type FileKey = (u64, u64, u64, i64, i64);

static HASHES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<FileKey, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The kernel's word on the caller: from SO_PEERCRED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Process id.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// The selectors of `peer`, sorted, read from `proc` (normally `/proc`).
pub fn selectors(proc: &Path, peer: Peer) -> Result<Vec<String>> {
    if peer.pid <= 0 {
        bail!("the caller has no process id (another pid namespace?)");
    }
    let dir = proc.join(peer.pid.to_string());
    let started = start_time(&dir)?;
    let mut out = vec![
        format!("unix:uid:{}", peer.uid),
        format!("unix:gid:{}", peer.gid),
    ];
    if let Ok(Some(u)) = nix::unistd::User::from_uid(peer.uid.into()) {
        out.push(format!("unix:user:{}", u.name));
    }
    if let Ok(Some(g)) = nix::unistd::Group::from_gid(peer.gid.into()) {
        out.push(format!("unix:group:{}", g.name));
    }
    for gid in supplementary_gids(&dir)? {
        out.push(format!("unix:supplementary_gid:{gid}"));
        if let Ok(Some(g)) = nix::unistd::Group::from_gid(gid.into()) {
            out.push(format!("unix:supplementary_group:{}", g.name));
        }
    }
    let exe = dir.join("exe");
    let path: PathBuf = std::fs::read_link(&exe).context("reading the caller's executable path")?;
    let shown = path.to_string_lossy();
    // A binary replaced on disk since it started: the path names another file now.
    if !shown.ends_with(" (deleted)") {
        out.push(format!("unix:path:{shown}"));
    }
    // /proc/PID/exe opens the very file the process runs, even when the path was replaced.
    if let Some(h) = hash_capped(&exe)? {
        out.push(format!("unix:sha256:{h}"));
    }
    if start_time(&dir)? != started {
        bail!("the caller's process id was reused during attestation");
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot); the command name before
/// it may hold spaces and parentheses, so fields are counted after its last ')'.
fn start_time(dir: &Path) -> Result<u64> {
    let stat = std::fs::read_to_string(dir.join("stat")).context("the caller is gone")?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unreadable /proc stat")?;
    rest.split_whitespace()
        .nth(19)
        .and_then(|v| v.parse().ok())
        .context("unreadable /proc stat start time")
}

fn supplementary_gids(dir: &Path) -> Result<Vec<u32>> {
    let status = std::fs::read_to_string(dir.join("status")).context("the caller is gone")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default())
}

fn hash_capped(exe: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut f = std::fs::File::open(exe).context("opening the caller's executable")?;
    // The metadata of the opened file itself (fstat), so the key is the file hashed.
    let m = f.metadata()?;
    let key = (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec());
    if m.size() > MAX_HASHED_BYTES {
        return Ok(None);
    }
    if let Some(h) = HASHES.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(Some(h.clone()));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total: u64 = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_HASHED_BYTES {
            return Ok(None);
        }
        h.update(&buf[..n]);
    }
    let digest = wasm_pki::hex(&h.finalize());
    let mut cache = HASHES.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= HASH_CACHE {
        cache.clear();
    }
    cache.insert(key, digest.clone());
    Ok(Some(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_attests_to_itself() {
        let me = Peer {
            pid: std::process::id() as i32,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        let s = selectors(Path::new("/proc"), me).unwrap();
        assert!(s.contains(&format!("unix:uid:{}", me.uid)), "{s:?}");
        let exe = std::env::current_exe().unwrap();
        assert!(s.contains(&format!("unix:path:{}", exe.display())), "{s:?}");
        let digest = wasm_pki::hex(&Sha256::digest(std::fs::read(&exe).unwrap()));
        assert!(s.contains(&format!("unix:sha256:{digest}")), "{s:?}");
        assert!(selectors(Path::new("/proc"), Peer { pid: 0, ..me }).is_err());
        assert!(
            selectors(
                Path::new("/proc"),
                Peer {
                    pid: i32::MAX,
                    ..me
                }
            )
            .is_err(),
            "a process that is gone"
        );
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        let d = tempfile::tempdir().unwrap();
        let mut fields = vec!["0"; 20];
        fields[19] = "4242";
        std::fs::write(
            d.path().join("stat"),
            format!("7 (a) b (c) {}", fields.join(" ")),
        )
        .unwrap();
        assert_eq!(start_time(d.path()).unwrap(), 4242);
        std::fs::write(d.path().join("stat"), "7 (a").unwrap();
        assert!(start_time(d.path()).is_err());
    }
}
