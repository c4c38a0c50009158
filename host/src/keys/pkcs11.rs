//! The `pkcs11:` key store: the CA key lives in a PKCS#11 token (an HSM, SoftHSM2) and never
//! leaves it; the host hashes the TBS and the token signs the digest (CKM_ECDSA on P-256: the
//! mechanism every token has, where CKM_ECDSA_SHA256 is missing from some, SoftHSM among them).
//!
//! One thread owns the token's session (a cryptoki `Session` is not `Sync`) and answers jobs
//! over a channel; a caller waits at most [`CALL_TIMEOUT`], so a token that stops answering (a
//! stopped or unplugged HSM) turns into "unavailable", never into a hung signer. After a failed
//! call the thread drops its session and module state (C_Finalize), and the next job loads it
//! again (C_Initialize, login): a token that comes back is used again without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::memory::{KeyError, Scheme};
use super::pkcs11_uri::{PinSource, Pkcs11Uri};

/// How long a caller waits for the token.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The environment variable a PIN may come from (when the URI names no `pin-source`).
pub const PIN_ENV: &str = "WASM_PKI_PKCS11_PIN";

/// DER of the P-256 curve's OID (CKA_EC_PARAMS).
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// SubjectPublicKeyInfo of a P-256 key up to its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The CA key in a PKCS#11 token.
pub struct Pkcs11Key {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    spki: Vec<u8>,
    /// A job timed out and the token thread has not come back from it: fail fast meanwhile.
    stuck: Arc<AtomicBool>,
}

enum Job {
    Sign(Vec<u8>, mpsc::Sender<Result<Vec<u8>, KeyError>>),
    Ping(mpsc::Sender<Result<(), KeyError>>),
}

/// An open token: the module, a logged-in session and the key's handle.
struct Conn {
    session: Option<Session>,
    key: ObjectHandle,
    ctx: Pkcs11,
}

impl Conn {
    fn session(&self) -> &Session {
        self.session.as_ref().expect("taken only on drop")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        drop(self.session.take());
        // C_Finalize: a token that failed is only usable again from a fresh C_Initialize.
        let _ = self.ctx.clone().finalize();
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Unavailable(format!("{what}: {e}"))
}

/// The PIN from the URI's `pin-source`, or `WASM_PKI_PKCS11_PIN`, or none.
fn pin(uri: &Pkcs11Uri) -> Result<Option<Zeroizing<String>>, KeyError> {
    match &uri.pin {
        PinSource::File(path) => {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                KeyError::Invalid(format!("reading the PIN file {}: {e}", path.display()))
            })?);
            let first = text.lines().next().unwrap_or_default();
            Ok(Some(Zeroizing::new(first.to_string())))
        }
        PinSource::Value(v) => Ok(Some(v.clone())),
        PinSource::None => Ok(std::env::var(PIN_ENV).ok().map(Zeroizing::new)),
    }
}

/// Load the module, find the token the URI names and log in.
fn session(uri: &Pkcs11Uri) -> Result<(Pkcs11, Session), KeyError> {
    let ctx = Pkcs11::new(&uri.module_path).map_err(|e| {
        KeyError::Invalid(format!(
            "loading the PKCS#11 module {}: {e}",
            uri.module_path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => return Err(unavailable("C_Initialize", e)),
    }
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| unavailable("listing the slots", e))?;
    let mut found = None;
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| unavailable("reading a token's label", e))?;
        let fits = uri
            .token
            .as_deref()
            .is_none_or(|t| info.label().trim_end() == t)
            && uri
                .serial
                .as_deref()
                .is_none_or(|s| info.serial_number().trim_end() == s)
            && uri.slot_id.is_none_or(|id| slot.id() == id);
        if fits {
            if found.is_some() {
                return Err(KeyError::Invalid(
                    "the URI fits more than one token: name it by token, serial or slot-id".into(),
                ));
            }
            found = Some(slot);
        }
    }
    let slot = found.ok_or_else(|| unavailable("the token", "no token fits the URI"))?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| unavailable("opening a session", e))?;
    let pin = pin(uri)?;
    let pin = pin.map(|p| AuthPin::from(p.to_string()));
    match session.login(UserType::User, pin.as_ref()) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => return Err(KeyError::Invalid(format!("logging in to the token: {e}"))),
    }
    Ok((ctx, session))
}

/// The object's label and id as the URI names them.
fn naming(uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut t = Vec::new();
    if let Some(o) = &uri.object {
        t.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

fn one(session: &Session, class: ObjectClass, uri: &Pkcs11Uri) -> Result<ObjectHandle, KeyError> {
    let mut template = vec![Attribute::Class(class)];
    template.extend(naming(uri));
    let found = session
        .find_objects(&template)
        .map_err(|e| unavailable("looking for the key", e))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(KeyError::Invalid(format!(
            "no {class} in the token fits the URI's object/id"
        ))),
        _ => Err(KeyError::Invalid(format!(
            "{} objects of class {class} fit the URI: name the key by object and id",
            found.len()
        ))),
    }
}

/// The SPKI of the public key object the URI names (P-256 only).
fn public_spki(session: &Session, uri: &Pkcs11Uri) -> Result<Vec<u8>, KeyError> {
    let public = one(session, ObjectClass::PUBLIC_KEY, uri)?;
    let attrs = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(|e| unavailable("reading the public key", e))?;
    let (mut params, mut point) = (None, None);
    for a in attrs {
        match a {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    if params.as_deref() != Some(&P256_PARAMS[..]) {
        return Err(KeyError::Invalid(
            "the token's key is not a P-256 EC key (the pkcs11 store signs with P-256)".into(),
        ));
    }
    // CKA_EC_POINT is the point wrapped in a DER OCTET STRING (some tokens give it bare).
    let point = point.unwrap_or_default();
    let raw = match point.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest.to_vec(),
        bare if bare.len() == 65 && bare[0] == 0x04 => bare.to_vec(),
        _ => {
            return Err(KeyError::Invalid(
                "the token's EC point is not an uncompressed P-256 point".into(),
            ))
        }
    };
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend(raw);
    Ok(spki)
}

fn connect(uri: &Pkcs11Uri) -> Result<Conn, KeyError> {
    let (ctx, session) = session(uri)?;
    let key = one(&session, ObjectClass::PRIVATE_KEY, uri)?;
    Ok(Conn {
        session: Some(session),
        key,
        ctx,
    })
}

impl Pkcs11Key {
    /// Open the key the URI names (the token's module, slot, login, the private key and its
    /// public key), with a thread that owns the session from now on.
    pub fn open(uri: &Pkcs11Uri) -> Result<Self, KeyError> {
        let first = connect(uri)?;
        let spki = public_spki(first.session(), uri)?;
        drop(first);
        let (jobs, rx) = mpsc::channel::<Job>();
        let stuck = Arc::new(AtomicBool::new(false));
        let (uri, flag) = (uri.clone(), stuck.clone());
        let thread = std::thread::Builder::new()
            .name("pkcs11".into())
            .spawn(move || {
                let mut conn: Option<Conn> = None;
                for job in rx {
                    // Connect if needed and run one call; any failure drops the connection
                    // (C_Finalize) so the next job opens the token afresh.
                    let mut run = |f: &dyn Fn(&Conn) -> Result<Vec<u8>, KeyError>| {
                        let ready = match &conn {
                            Some(c) => Ok(c),
                            None => connect(&uri).map(|c| &*conn.insert(c)),
                        };
                        let out = ready.and_then(f);
                        if out.is_err() {
                            conn = None;
                        }
                        out
                    };
                    match job {
                        Job::Sign(digest, reply) => {
                            let out = run(&|c| {
                                c.session()
                                    .sign(&Mechanism::Ecdsa, c.key, &digest)
                                    .map_err(|e| unavailable("C_Sign", e))
                            });
                            let _ = reply.send(out.and_then(|rs| {
                                wasm_pki::p256_signature_der(&rs)
                                    .map_err(|e| KeyError::Invalid(e.to_string()))
                            }));
                        }
                        Job::Ping(reply) => {
                            let out = run(&|c| {
                                c.session()
                                    .get_session_info()
                                    .map(|_| Vec::new())
                                    .map_err(|e| unavailable("C_GetSessionInfo", e))
                            });
                            let _ = reply.send(out.map(|_| ()));
                        }
                    }
                    flag.store(false, Ordering::SeqCst);
                }
            })
            .map_err(|e| KeyError::Invalid(format!("starting the token thread: {e}")))?;
        Ok(Pkcs11Key {
            jobs: Some(jobs),
            thread: Some(thread),
            spki,
            stuck,
        })
    }

    fn ask<T>(
        &self,
        job: impl FnOnce(mpsc::Sender<Result<T, KeyError>>) -> Job,
    ) -> Result<T, KeyError> {
        if self.stuck.load(Ordering::SeqCst) {
            return Err(KeyError::Unavailable(
                "the token has not answered an earlier call".into(),
            ));
        }
        let (tx, rx) = mpsc::channel();
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job(tx)).ok())
            .ok_or_else(|| KeyError::Unavailable("the token thread is gone".into()))?;
        match rx.recv_timeout(CALL_TIMEOUT) {
            Ok(out) => out,
            Err(_) => {
                self.stuck.store(true, Ordering::SeqCst);
                Err(KeyError::Unavailable(format!(
                    "the token did not answer within {} s",
                    CALL_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// Whether the token answers now (for /readyz).
    pub fn ping(&self) -> Result<(), KeyError> {
        self.ask(Job::Ping)
    }
}

impl Drop for Pkcs11Key {
    /// Close the session and finalize before the process goes on (or exits): a module torn
    /// down by the exit while the token thread still uses it crashes.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            if !self.stuck.load(Ordering::SeqCst) {
                let _ = t.join();
            }
        }
    }
}

impl super::CaKey for Pkcs11Key {
    fn scheme(&self) -> Scheme {
        Scheme::EcdsaP256Sha256
    }

    fn spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = Sha256::digest(tbs).to_vec();
        self.ask(|tx| Job::Sign(digest, tx))
    }

    fn ready(&self) -> Result<(), KeyError> {
        self.ping()
    }
}

/// Make a P-256 key pair in the token under the URI's object label and id: the private key
/// sensitive, never extractable, for signing only. Refused if an object of that name exists.
/// Returns its SubjectPublicKeyInfo.
pub fn generate(uri: &Pkcs11Uri) -> Result<Vec<u8>, KeyError> {
    if uri.object.is_none() && uri.id.is_none() {
        return Err(KeyError::Invalid(
            "name the new key in the URI (object=LABEL and/or id=…)".into(),
        ));
    }
    let (ctx, session) = session(uri)?;
    let existing = session
        .find_objects(&naming(uri))
        .map_err(|e| unavailable("looking for existing objects", e))?;
    if !existing.is_empty() {
        return Err(KeyError::Invalid(
            "the token already holds an object of that label/id: refusing to overwrite".into(),
        ));
    }
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::KeyType(KeyType::EC),
        Attribute::EcParams(P256_PARAMS.to_vec()),
    ];
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::KeyType(KeyType::EC),
    ];
    public.extend(naming(uri));
    private.extend(naming(uri));
    session
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .map_err(|e| KeyError::Invalid(format!("generating the key in the token: {e}")))?;
    // No C_Finalize: the module is initialised once per process, and another user of it (the
    // key that signs next) may be open.
    drop(ctx);
    public_spki(&session, uri)
}
