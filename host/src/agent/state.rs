//! What the agent holds for the Workload API: the node's entries, an X.509-SVID per entry (its
//! key made here, in memory only) and the trust bundle, as one immutable snapshot that the sync
//! loop replaces whole; streams wait on a version number and send only what changed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::db::Entry;

/// One entry's current X.509-SVID.
pub struct Svid {
    /// The leaf then its intermediates, DER.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's key, PKCS#8 DER (zeroized when dropped; never written anywhere).
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// When the agent replaces it (half its life, with jitter).
    pub rotate_at: i64,
    /// Serial, hex (for logs).
    pub serial: String,
}

/// Everything the Workload API answers from, at one moment.
#[derive(Default)]
pub struct Snapshot {
    /// The node's entries, as the signer listed them.
    pub entries: Vec<Entry>,
    /// The current SVID of each entry, by entry id.
    pub svids: BTreeMap<String, Arc<Svid>>,
    /// The trust domain's X.509 authorities (the bundle's `x509-svid` keys), DER.
    pub x509_authorities: Vec<Vec<u8>>,
    /// The trust domain's JWT authorities, as a JWK Set (JSON); empty when there are none.
    pub jwt_bundle: Vec<u8>,
    /// The trust domain (from the entries' SPIFFE IDs).
    pub trust_domain: String,
}

/// The shared state: the current snapshot and a version that moves when it is replaced.
pub struct State {
    current: RwLock<Arc<Snapshot>>,
    version: watch::Sender<u64>,
}

impl Default for State {
    fn default() -> Self {
        State {
            current: RwLock::new(Arc::new(Snapshot::default())),
            version: watch::channel(0).0,
        }
    }
}

impl State {
    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace the snapshot and wake every stream.
    pub fn publish(&self, s: Snapshot) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
        self.version.send_modify(|v| *v += 1);
    }

    /// Whether a snapshot was ever published (the first sync with the signer is done).
    pub fn published(&self) -> bool {
        *self.version.borrow() > 0
    }

    /// A receiver that sees every later publish.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}
