//! The sandbox protocol: the typed messages the wasmtime host and the guest (the `.wasm` module)
//! exchange, as JSON, and the guest's side of it ([`Guest`]). Both ends use these types, so a
//! renamed or missing field is an error in either direction, never a default.
//!
//! The guest needs no import: the host passes the time and a fresh 256-bit seed in every request,
//! and the CA stays loaded in the instance between calls. No I/O here; the exports that move
//! bytes in and out of wasm memory are in `pkg/src/guest.rs`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crl::Revoked;
use crate::{
    crl_pem, CertificateAuthority, Error, IssueOptions, OffsetDateTime, ParsedCsr, Profile,
    SanName, SeedRng,
};

/// Largest request the guest accepts; the host caps inputs before they get here.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// A request from the host to the guest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Load the CA into this instance; answered with [`Loaded`].
    LoadCa(LoadCa),
    /// Issue a certificate for an untrusted CSR under a profile; answered with [`Signed`].
    Sign(Box<SignRequest>),
    /// Renew (or re-key) a certificate this CA issued, under a profile; answered with [`Signed`].
    Renew(Box<RenewRequest>),
    /// Check a renewal proof (form, signature, lifetime, audience); answered with [`ProofChecked`].
    CheckProof(ProofRequest),
    /// The host's verdict on the signature a [`VerifyAsk`] handed out: resumes the sign request
    /// that asked, answered as that request is.
    Verified(Verdict),
    /// The host key store's signature over the TBS a [`SignAsk`] handed out: resumes the request
    /// that asked, answered as that request is.
    Signature(SignatureReply),
    /// Sign a CRL; answered with the CRL PEM.
    Crl(CrlRequest),
    /// Describe a certificate or CSR; answered with [`crate::Description`].
    Inspect(InspectRequest),
    /// Sign a JWT-SVID with the loaded JWT authority's key; answered with [`JwtSigned`].
    SignJwt(JwtRequest),
    /// Test builds of the module only: never returns, to prove the host's deadline.
    Spin,
    /// Test builds of the module only: allocates `bytes`, to prove the host's memory cap.
    Grow(GrowRequest),
    /// Test builds of the module only: this instance lies from now on as told, to prove that
    /// the host's key store signs nothing it should not.
    Lie(LieRequest),
}

/// Load the CA: certificate PEM (possibly followed by its chain) and its key, or no key when the
/// host's key store holds it. Zeroized on drop; its `Debug` shows no key material.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadCa {
    /// The CA certificate and its chain, PEM.
    pub cert_pem: String,
    /// The CA key, PKCS#8 PEM (encrypted or not). `None`: the host's key store holds it, and
    /// every certificate and CRL is handed out as a [`SignAsk`] (this needs `host_verifies`, so
    /// that the host knows the key of each CSR it signs for).
    pub key_pem: Option<String>,
    /// The key's passphrase, when it is encrypted.
    pub passphrase: Option<String>,
    /// Where the CA publishes its CRL and certificate (put into every leaf); none when absent.
    #[zeroize(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_urls: Option<crate::PublicUrls>,
    /// The host verifies CSR signatures (P-256, Ed25519, RSA) with its own crypto: a sign request
    /// is then answered with a [`VerifyAsk`] first, and resumed by [`Request::Verified`].
    #[serde(default)]
    pub host_verifies: bool,
    /// The JWT authority's P-256 key, PKCS#8 PEM (encrypted with the same passphrase, or not):
    /// JWT-SVIDs are signed with it, inside the sandbox like the CA key. None: no JWT-SVIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_key_pem: Option<String>,
    /// Instead of `jwt_key_pem`, the JWT authority's public key (SPKI PEM) when the host's key
    /// store holds its key: every JWT-SVID's signing input is then handed out as a [`SignAsk`].
    #[zeroize(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_public_key_pem: Option<String>,
}

impl core::fmt::Debug for LoadCa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LoadCa").finish_non_exhaustive()
    }
}

/// A 256-bit seed for the guest's CSPRNG, hex on the wire, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Seed(pub [u8; 32]);

impl core::fmt::Debug for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Serialize for Seed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(crate::hex(&self.0)))
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        let bytes =
            Zeroizing::new(crate::unhex("seed", &text, 32).map_err(serde::de::Error::custom)?);
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("seed must be 64 hex digits"))?;
        Ok(Seed(seed))
    }
}

/// Issue a certificate for `csr_pem` under `profile`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRequest {
    /// The untrusted CSR, PEM or DER-in-PEM as it came.
    pub csr_pem: String,
    /// The profile, already valid on the host; checked again as it is decoded.
    pub profile: Profile,
    /// The identity the credential vouches for.
    pub identity: Option<String>,
    /// Requested lifetime in seconds; the profile's default when absent.
    pub lifetime_secs: Option<u64>,
    /// The host's clock, Unix seconds.
    pub now: i64,
    /// Fresh entropy from the host's OS RNG.
    pub seed: Seed,
    /// When to renew, as a fraction of the lifetime (default ½).
    pub renew_fraction: Option<f64>,
    /// Names asked for outside the CSR (a Vault client's `alt_names`…), checked like the CSR's.
    #[serde(default)]
    pub extra_names: Vec<SanName>,
    /// The names the certificate must carry, no more and no fewer (an ACME order's validated
    /// identifiers): the CSR must ask for exactly these, and each must pass the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_names: Option<Vec<SanName>>,
}

/// Renew `certificate_pem`, which must have been issued by the loaded CA: a new certificate for
/// its key and names under `profile` (the current policy decides), or, with `csr_pem`, a re-key:
/// the CSR's new key for the same names or a subset. The host has already checked the ledger
/// (issued here, not revoked), the profile's renewal rule and the holder's possession of the key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenewRequest {
    /// The certificate being renewed, PEM.
    pub certificate_pem: String,
    /// A re-key's untrusted CSR.
    pub csr_pem: Option<String>,
    /// The profile the certificate was issued under, as the policy has it now.
    pub profile: Profile,
    /// The identity the original credential vouched for.
    pub identity: Option<String>,
    /// Requested lifetime in seconds; the profile's default when absent.
    pub lifetime_secs: Option<u64>,
    /// The host's clock, Unix seconds.
    pub now: i64,
    /// Fresh entropy from the host's OS RNG.
    pub seed: Seed,
    /// When to renew, as a fraction of the lifetime (default ½).
    pub renew_fraction: Option<f64>,
}

/// Check an untrusted renewal proof ([`crate::wire::proof`]) against the signer's audiences.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProofRequest {
    /// The proof, as the `Authorization` header carried it (without the scheme).
    pub proof: String,
    /// The renew URLs this signer answers at.
    pub audiences: Vec<String>,
    /// The host's clock, Unix seconds.
    pub now: i64,
}

/// A proof the guest checked: the certificate whose key signed it, and what the host needs to
/// find its record and refuse a second use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProofChecked {
    /// The certificate, PEM.
    pub certificate: String,
    /// Its serial, hex.
    pub serial: String,
    /// SHA-256 of its DER, hex.
    pub fingerprint: String,
    /// The proof's unique id.
    pub jti: String,
    /// When the proof stops being accepted, Unix seconds.
    pub expires_at: i64,
}

/// Sign a CRL listing `revoked`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrlRequest {
    /// Revoked certificates.
    pub revoked: Vec<RevokedEntry>,
    /// The host's clock, Unix seconds.
    pub now: i64,
    /// nextUpdate = now + this.
    pub next_update_secs: u64,
    /// The CRL number (monotonic, kept by the ledger).
    pub number: u64,
}

/// One revoked certificate in a [`CrlRequest`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokedEntry {
    /// Serial, hex.
    pub serial: String,
    /// Revocation time, Unix seconds.
    pub revoked_at: i64,
    /// RFC 5280 CRLReason code (0-10 but 7); absent: no reasonCode extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<u8>,
}

/// The host's answer to a [`VerifyAsk`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// Whether the signature verified.
    pub valid: bool,
}

/// The guest's mid-request question, `{"verify": SignatureCheck}`: the host verifies the
/// signature with its own crypto and resumes with [`Request::Verified`]. Everything but the
/// arithmetic (encodings, scheme against key) has been checked in the guest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum VerifyAsk {
    /// Verify this signature.
    Verify(crate::SignatureCheck),
}

impl VerifyAsk {
    /// The check a guest reply asks for, if it is a [`VerifyAsk`] (else the reply is final).
    pub fn from_reply(bytes: &[u8]) -> Option<Result<crate::SignatureCheck, Error>> {
        if !bytes.starts_with(br#"{"verify":"#) {
            return None;
        }
        Some(
            serde_json::from_slice::<VerifyAsk>(bytes)
                .map(|VerifyAsk::Verify(c)| c)
                .map_err(|e| Error::InvalidParameter(format!("unreadable signature check: {e}"))),
        )
    }
}

/// The key store's signature over a [`SignAsk`]'s TBS, hex on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureReply {
    /// DER ECDSA (X.509's form) or Ed25519's 64 bytes.
    #[serde(with = "crate::signature::hex_bytes")]
    pub signature: Vec<u8>,
}

/// The algorithm a [`SignAsk`] wants its TBS signed with: the CA key's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignScheme {
    /// ecdsa-with-SHA256 on P-256, the signature DER.
    #[serde(rename = "ES256")]
    EcdsaP256Sha256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    Ed25519,
}

/// The guest's mid-request ask, `{"sign": {"scheme", "tbs"}}`, when the CA key is in the host's
/// key store: sign this TBSCertificate or TBSCertList and resume with [`Request::Signature`].
/// The host checks the TBS against what it knows before it signs anything.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignAsk {
    /// The CA key's algorithm.
    pub scheme: SignScheme,
    /// The DER to sign.
    #[serde(with = "crate::signature::hex_bytes")]
    pub tbs: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum SignAskWire {
    Sign(SignAsk),
}

impl SignAsk {
    /// The ask a guest reply makes, if it is a [`SignAsk`] (else the reply is something else).
    pub fn from_reply(bytes: &[u8]) -> Option<Result<SignAsk, Error>> {
        if !bytes.starts_with(br#"{"sign":"#) {
            return None;
        }
        Some(
            serde_json::from_slice::<SignAskWire>(bytes)
                .map(|SignAskWire::Sign(a)| a)
                .map_err(|e| Error::InvalidParameter(format!("unreadable sign ask: {e}"))),
        )
    }

    /// The ask as the guest writes it.
    pub fn to_reply(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&SignAskWire::Sign(SignAsk {
            scheme: self.scheme,
            tbs: self.tbs.clone(),
        }))
        .map_err(|e| Error::InvalidParameter(format!("sign ask encoding: {e}")))
    }
}

/// Sign a JWT-SVID for `spiffe_id` and `audience`, valid `lifetime_secs` from `now`. The host
/// has decided the identity (a registration entry of an authenticated node) and the lifetime.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRequest {
    /// The SPIFFE ID (`sub`).
    pub spiffe_id: String,
    /// The audiences (`aud`), at least one.
    pub audience: Vec<String>,
    /// Lifetime, seconds.
    pub lifetime_secs: u64,
    /// The issuer (`iss`), when the CA publishes one.
    pub issuer: Option<String>,
    /// The host's clock, Unix seconds.
    pub now: i64,
}

/// What [`Request::SignJwt`] returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtSigned {
    /// The JWT-SVID, compact form.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
}

/// The JWT authority a sandbox instance holds: its key id and public key (a bundle's
/// `jwt-svid` JWK, with `use` and `kid`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtKeyInfo {
    /// `kid`.
    pub kid: String,
    /// The JWK.
    pub jwk: serde_json::Value,
}

/// Describe a certificate or CSR.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectRequest {
    /// PEM text.
    pub pem: String,
}

/// Test hook: allocate this many bytes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowRequest {
    /// Bytes to allocate.
    pub bytes: usize,
}

/// Test hook: how a lying guest lies (each `None`/`false` is the truth).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LieRequest {
    /// Hand out these bytes instead of the TBS it built, hex.
    #[serde(default)]
    pub tbs: Option<String>,
    /// Name this scheme in the sign ask instead of the key's.
    #[serde(default)]
    pub scheme: Option<SignScheme>,
    /// Answer the signature with the same sign ask again instead of the certificate.
    #[serde(default)]
    pub ask_twice: bool,
    /// Answer a request with this sign ask before anything else (no verify ask first).
    #[serde(default)]
    pub ask_first: bool,
    /// Answer the signature with these bytes instead (another certificate…).
    #[serde(default)]
    pub answer: Option<String>,
}

/// The guest's answer: `{"ok": T}` or `{"error": {code, message}}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Reply<T> {
    /// Success.
    Ok(T),
    /// A refusal or failure, with [`Error::code`] and its message.
    Error(GuestError),
}

/// An error as the guest reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestError {
    /// [`Error::code`] of the core error.
    pub code: String,
    /// Its message.
    pub message: String,
}

impl core::fmt::Display for GuestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// What [`Request::LoadCa`] returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Loaded {
    /// The CA's subject DN.
    pub subject: String,
    /// The CA's notAfter, Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the CA certificate, hex.
    pub fingerprint: String,
    /// The JWT authority, when one was loaded.
    pub jwt_authority: Option<JwtKeyInfo>,
}

/// What [`Request::Sign`] returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Signed {
    /// The leaf, PEM.
    pub certificate: String,
    /// The issuing CA and its chain, PEM each.
    pub chain: Vec<String>,
    /// Serial, hex.
    pub serial: String,
    /// Subject DN text.
    pub subject: String,
    /// SANs as text (`DNS:…`).
    pub names: Vec<String>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// When to renew, Unix seconds.
    pub renew_after: i64,
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
}

/// Encode a request for the guest.
pub fn encode_request(r: &Request) -> Result<Zeroizing<Vec<u8>>, Error> {
    serde_json::to_vec(r)
        .map(Zeroizing::new)
        .map_err(|e| Error::InvalidParameter(format!("sandbox request: {e}")))
}

/// Decode the guest's reply to a request that answers `T`. A reply with a missing, renamed or
/// unknown field is an error, not a default.
pub fn decode_reply<T: DeserializeOwned>(bytes: &[u8]) -> Result<Result<T, GuestError>, Error> {
    match serde_json::from_slice::<Reply<T>>(bytes) {
        Ok(Reply::Ok(v)) => Ok(Ok(v)),
        Ok(Reply::Error(e)) => Ok(Err(e)),
        Err(e) => Err(Error::InvalidParameter(format!(
            "unreadable sandbox reply: {e}"
        ))),
    }
}

/// Decode a request (guest side); the error comes back already encoded as a reply.
pub fn decode_request(bytes: &[u8]) -> Result<Request, Vec<u8>> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(encode::<()>(Err(Error::TooLarge {
            what: "sandbox request",
            size: bytes.len(),
            limit: MAX_REQUEST_BYTES,
        })));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        encode::<()>(Err(Error::InvalidParameter(format!(
            "sandbox request: {e}"
        ))))
    })
}

/// Encode a reply (guest side).
pub fn encode<T: Serialize>(r: Result<T, Error>) -> Vec<u8> {
    let body = match r {
        Ok(v) => serde_json::to_vec(&Reply::Ok(v)),
        Err(e) => serde_json::to_vec(&Reply::<()>::Error(GuestError {
            code: e.code().to_string(),
            message: e.to_string(),
        })),
    };
    body.unwrap_or_else(|_| {
        br#"{"error":{"code":"encoding","message":"response encoding failed"}}"#.to_vec()
    })
}

fn time(now: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(now)
        .map_err(|e| Error::InvalidParameter(format!("now: {e}")))
}

fn check_proof(p: &ProofRequest) -> Result<ProofChecked, Error> {
    let v = crate::wire::proof::verify_proof(&p.proof, &p.audiences, p.now)?;
    Ok(ProofChecked {
        certificate: v.certificate.to_pem(),
        serial: v.certificate.serial_hex(),
        fingerprint: v.certificate.fingerprint_sha256(),
        jti: v.jti,
        expires_at: v.expires_at,
    })
}

/// The guest's state: the CA, loaded once per instance.
#[derive(Default)]
pub struct Guest {
    ca: Option<CertificateAuthority>,
    host_verifies: bool,
    /// The JWT authority's key (or, with the key in the host's store, none) and key id.
    jwt: Option<(Option<crate::KeyPair>, String)>,
    /// A request waiting for the host: its verdict on a CSR's signature, or its key store's
    /// signature. Any other request drops it, so an answer only ever resumes the request that
    /// asked.
    pending: Option<Pending>,
}

/// What waits for the host's answer.
enum Pending {
    /// The CSR whose signature the host verifies, and the request to go on with.
    Verify(Box<(crate::UncheckedCsr, Resume)>),
    /// What was handed out to be signed, and how to finish it.
    Signature(Box<Finish>),
}

/// A request that resumes after the host's verdict.
enum Resume {
    Sign(SignRequest),
    Renew(RenewRequest),
}

/// How a signed TBS becomes the answer.
enum Finish {
    Certificate {
        unsigned: crate::Unsigned,
        renew_fraction: Option<f64>,
    },
    Crl(crate::Tbs),
    /// A JWT-SVID's signing input, and its `exp`.
    Jwt {
        input: String,
        expires_at: i64,
    },
}

/// A request's outcome in the guest: the answer, or a signature to ask the host for first.
enum Out<T> {
    Done(T),
    Ask(Box<(SignAsk, Finish)>),
}

impl Guest {
    /// Handle raw request bytes; the reply is JSON (`{"ok": …}` or `{"error": …}`).
    /// Test hooks (`spin`, `grow`) are refused here: only the module's test build runs them.
    pub fn handle(&mut self, request: &[u8]) -> Vec<u8> {
        match decode_request(request) {
            Ok(req) => self.handle_request(req),
            Err(reply) => reply,
        }
    }

    /// Handle a decoded request.
    pub fn handle_request(&mut self, req: Request) -> Vec<u8> {
        let pending = self.pending.take();
        match req {
            Request::LoadCa(l) => encode(self.load_ca(&l)),
            Request::Sign(s) => self.sign_or_ask(*s),
            Request::Verified(v) => match pending {
                Some(Pending::Verify(pending)) => match pending.0.accept_verdict(v.valid) {
                    Err(e) => encode::<()>(Err(e)),
                    Ok(csr) => {
                        let out = match pending.1 {
                            Resume::Sign(s) => self.sign_parsed(&csr, s),
                            Resume::Renew(r) => self.renew_with(r, Some(csr)),
                        };
                        self.answer(out)
                    }
                },
                _ => encode::<()>(Err(Error::InvalidParameter(
                    "a verdict without a pending signature check".into(),
                ))),
            },
            Request::Signature(sig) => match pending {
                Some(Pending::Signature(finish)) => self.finish(*finish, &sig.signature),
                _ => encode::<()>(Err(Error::InvalidParameter(
                    "a signature without a pending sign ask".into(),
                ))),
            },
            Request::Renew(r) => self.renew_or_ask(*r),
            Request::CheckProof(p) => encode(check_proof(&p)),
            Request::Crl(c) => {
                let out = self.crl(&c);
                self.answer(out)
            }
            Request::Inspect(i) => encode(crate::inspect(i.pem.as_bytes())),
            Request::SignJwt(j) => {
                let out = self.sign_jwt(&j);
                self.answer(out)
            }
            Request::Spin | Request::Grow(_) | Request::Lie(_) => encode::<()>(Err(
                Error::InvalidParameter("test hooks exist only in the module's test build".into()),
            )),
        }
    }

    /// Encode a finished outcome, or keep what waits for the host's signature and ask for it.
    fn answer<T: Serialize>(&mut self, out: Result<Out<T>, Error>) -> Vec<u8> {
        match out {
            Err(e) => encode::<()>(Err(e)),
            Ok(Out::Done(v)) => encode(Ok(v)),
            Ok(Out::Ask(ask)) => match ask.0.to_reply() {
                Ok(bytes) => {
                    self.pending = Some(Pending::Signature(Box::new(ask.1)));
                    bytes
                }
                Err(e) => encode::<()>(Err(e)),
            },
        }
    }

    /// Splice the host's signature in and answer as the request that asked would have.
    fn finish(&self, finish: Finish, signature: &[u8]) -> Vec<u8> {
        match finish {
            Finish::Certificate {
                unsigned,
                renew_fraction,
            } => encode(
                unsigned
                    .assemble(signature)
                    .and_then(|issued| self.signed(issued, renew_fraction)),
            ),
            Finish::Crl(tbs) => encode::<String>(Ok(crl_pem(&tbs.assemble(signature)))),
            Finish::Jwt { input, expires_at } => encode(
                crate::jwt_svid_assemble(&input, signature)
                    .map(|token| JwtSigned { token, expires_at }),
            ),
        }
    }

    fn ca(&self) -> Result<&CertificateAuthority, Error> {
        self.ca.as_ref().ok_or_else(|| {
            Error::InvalidParameter("no CA is loaded in this sandbox instance".into())
        })
    }

    fn load_ca(&mut self, l: &LoadCa) -> Result<Loaded, Error> {
        let mut ca = match &l.key_pem {
            Some(key) => CertificateAuthority::from_pem(
                l.cert_pem.as_bytes(),
                key.as_bytes(),
                l.passphrase.as_deref().map(str::as_bytes),
            )?,
            // The host must know each CSR's key to check what it signs: it verifies them.
            None if !l.host_verifies => {
                return Err(Error::InvalidParameter(
                    "a CA whose key the host holds needs the host to verify CSR signatures".into(),
                ))
            }
            None => CertificateAuthority::from_pem_public(l.cert_pem.as_bytes())?,
        };
        if let Some(urls) = &l.public_urls {
            ca.set_public_urls(urls.clone())?;
        }
        let jwt = match (&l.jwt_key_pem, &l.jwt_public_key_pem) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(Error::InvalidParameter(
                    "the JWT authority's key, or its public key: not both".into(),
                ))
            }
            (Some(pem), None) => {
                let key = crate::KeyPair::from_pem(
                    pem.as_bytes(),
                    l.passphrase.as_deref().map(str::as_bytes),
                )?;
                let public = key.public_key().clone();
                Some((Some(key), public))
            }
            (None, Some(pem)) => Some((None, crate::PublicKey::from_spki(pem.as_bytes())?)),
        };
        let jwt = match jwt {
            None => None,
            Some((_, public)) if public.kind() != crate::KeyKind::P256 => {
                return Err(Error::InvalidKey(
                    "the JWT authority's key must be P-256 (JWT-SVIDs are ES256)".into(),
                ))
            }
            Some((key, public)) => Some((key, crate::JwtAuthority::new(public))),
        };
        let loaded = Loaded {
            subject: crate::inspect::describe_certificate(ca.certificate())?.subject,
            not_after: ca.certificate().not_after(),
            fingerprint: ca.certificate().fingerprint_sha256(),
            jwt_authority: jwt.as_ref().map(|(_, a)| JwtKeyInfo {
                kid: a.kid.clone(),
                jwk: a.to_bundle_jwk(),
            }),
        };
        self.jwt = jwt.map(|(k, a)| (k, a.kid));
        self.ca = Some(ca);
        self.host_verifies = l.host_verifies;
        Ok(loaded)
    }

    /// Sign, or, when the host verifies, parse and hand the CSR's signature out first.
    fn sign_or_ask(&mut self, s: SignRequest) -> Vec<u8> {
        if !self.host_verifies {
            let out = ParsedCsr::parse(s.csr_pem.as_bytes()).and_then(|c| self.sign_parsed(&c, s));
            return self.answer(out);
        }
        match crate::UncheckedCsr::parse(s.csr_pem.as_bytes()) {
            Ok(csr) => self.check_or_go_on(csr, Resume::Sign(s)),
            Err(e) => encode::<()>(Err(e)),
        }
    }

    /// Renew; a re-key's CSR goes to the host for its signature check first, like a sign's.
    fn renew_or_ask(&mut self, r: RenewRequest) -> Vec<u8> {
        let csr = match (&r.csr_pem, self.host_verifies) {
            (Some(pem), true) => crate::UncheckedCsr::parse(pem.as_bytes()),
            (Some(pem), false) => {
                let out =
                    ParsedCsr::parse(pem.as_bytes()).and_then(|c| self.renew_with(r, Some(c)));
                return self.answer(out);
            }
            (None, _) => {
                let out = self.renew_with(r, None);
                return self.answer(out);
            }
        };
        match csr {
            Ok(csr) => self.check_or_go_on(csr, Resume::Renew(r)),
            Err(e) => encode::<()>(Err(e)),
        }
    }

    /// Hand the CSR's signature check out (kept as pending), or verify here the kinds the host
    /// does not (RSA-PSS with an unusual salt) and go on.
    fn check_or_go_on(&mut self, csr: crate::UncheckedCsr, resume: Resume) -> Vec<u8> {
        match csr.check() {
            Some(check) => match serde_json::to_vec(&VerifyAsk::Verify(check)) {
                Ok(bytes) => {
                    self.pending = Some(Pending::Verify(Box::new((csr, resume))));
                    bytes
                }
                Err(e) => encode::<()>(Err(Error::InvalidParameter(format!(
                    "signature check encoding: {e}"
                )))),
            },
            // With the key outside, the host signs only for a key it verified itself: a
            // signature it cannot check is refused, after the core's own verdict (so a bad
            // one is refused as bad, like on every other path).
            None if self.ca.as_ref().is_some_and(|c| c.key().is_none()) => {
                encode::<()>(csr.verify().and_then(|_| Err(Error::UnsupportedAlgorithm(
                    "this CSR's signature (RSA-PSS with a salt other than 32 bytes) is verified only inside the sandbox, and this CA's key store signs only for keys the host verified".into(),
                ))))
            }
            None => {
                let out = csr.verify().and_then(|c| match resume {
                    Resume::Sign(s) => self.sign_parsed(&c, s),
                    Resume::Renew(r) => self.renew_with(r, Some(c)),
                });
                self.answer(out)
            }
        }
    }

    fn sign_jwt(&self, j: &JwtRequest) -> Result<Out<JwtSigned>, Error> {
        let (key, kid) = self.jwt.as_ref().ok_or_else(|| {
            Error::InvalidParameter("no JWT authority is loaded in this sandbox instance".into())
        })?;
        let lifetime = i64::try_from(j.lifetime_secs)
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| Error::InvalidParameter("a JWT-SVID lifetime of 1 s or more".into()))?;
        let claims = crate::JwtSvidClaims {
            spiffe_id: crate::SpiffeId::parse(&j.spiffe_id)?,
            audience: j.audience.clone(),
            issued_at: j.now,
            expires_at: j.now.saturating_add(lifetime),
            issuer: j.issuer.clone(),
        };
        let expires_at = claims.expires_at;
        match key {
            Some(key) => Ok(Out::Done(JwtSigned {
                token: crate::sign_jwt_svid(key, kid, &claims)?,
                expires_at,
            })),
            None => {
                let input = crate::jwt_svid_signing_input(kid, &claims)?;
                let ask = SignAsk {
                    scheme: SignScheme::EcdsaP256Sha256,
                    tbs: input.clone().into_bytes(),
                };
                Ok(Out::Ask(Box::new((ask, Finish::Jwt { input, expires_at }))))
            }
        }
    }

    fn sign_parsed(&self, csr: &ParsedCsr, s: SignRequest) -> Result<Out<Signed>, Error> {
        // An order's names: the CSR must ask for exactly them; the one for the CN goes in as the
        // identity (checked by the profile here like the others, since identities skip it).
        let ordered = match &s.exact_names {
            Some(names) => Some(s.profile.check_exact_names(csr, names)?.value()),
            None => None,
        };
        self.issue(
            csr,
            &s.profile,
            ordered.as_deref().or(s.identity.as_deref()),
            (s.lifetime_secs, &s.extra_names),
            s.now,
            &s.seed,
            s.renew_fraction,
        )
    }

    /// Renew with the re-key's CSR already verified (or none).
    fn renew_with(&self, r: RenewRequest, rekey: Option<ParsedCsr>) -> Result<Out<Signed>, Error> {
        let ca = self.ca()?;
        let old = crate::Certificate::parse(r.certificate_pem.as_bytes())?;
        crate::chain::check_issued_by(&old, ca.certificate())?;
        // The CA's own certificate (self-signed, so "issued by" it) or any CA certificate is
        // never renewed into a leaf: renewal is for what this CA issued to its holders.
        if old.der() == ca.certificate().der() || crate::inspect::describe_certificate(&old)?.is_ca
        {
            return Err(Error::Policy(
                "a CA certificate is not renewed here; only certificates this CA issued".into(),
            ));
        }
        let current = ParsedCsr::from_certificate(&old)?;
        let csr = match rekey {
            None => current,
            Some(csr) => {
                if csr.public_key().spki_der() == current.public_key().spki_der() {
                    return Err(Error::Policy(
                        "a re-key needs a new key; this CSR carries the certificate's own".into(),
                    ));
                }
                if let Some(n) = csr.names().iter().find(|n| !current.names().contains(n)) {
                    return Err(Error::Policy(format!(
                        "a re-key keeps the certificate's names or a subset; {n} is not one of them"
                    )));
                }
                csr
            }
        };
        self.issue(
            &csr,
            &r.profile,
            r.identity.as_deref(),
            (r.lifetime_secs, &[]),
            r.now,
            &r.seed,
            r.renew_fraction,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        csr: &ParsedCsr,
        profile: &Profile,
        identity: Option<&str>,
        (lifetime_secs, extra_names): (Option<u64>, &[SanName]),
        now: i64,
        seed: &Seed,
        renew_fraction: Option<f64>,
    ) -> Result<Out<Signed>, Error> {
        let now = time(now)?;
        let mut rng = SeedRng::from_seed(seed.0);
        let identity = identity.map(SanName::parse).transpose()?;
        let ca = self.ca()?;
        let opts = IssueOptions {
            identity,
            lifetime_secs,
            extra_names: extra_names.to_vec(),
        };
        if ca.key().is_none() {
            let unsigned = ca.issue_unsigned(csr, profile, &opts, now, &mut rng)?;
            return Ok(Out::Ask(Box::new((
                SignAsk {
                    scheme: self.scheme()?,
                    tbs: unsigned.tbs.der.clone(),
                },
                Finish::Certificate {
                    unsigned,
                    renew_fraction,
                },
            ))));
        }
        let issued = ca.issue(csr, profile, &opts, now, &mut rng)?;
        self.signed(issued, renew_fraction).map(Out::Done)
    }

    /// The scheme of the CA key the host holds.
    fn scheme(&self) -> Result<SignScheme, Error> {
        match self.ca()?.public_key().kind() {
            crate::KeyKind::P256 => Ok(SignScheme::EcdsaP256Sha256),
            crate::KeyKind::Ed25519 => Ok(SignScheme::Ed25519),
            other => Err(Error::UnsupportedAlgorithm(format!(
                "a {other:?} CA key cannot be held outside"
            ))),
        }
    }

    /// The reply for an issued certificate.
    fn signed(&self, issued: crate::Issued, renew_fraction: Option<f64>) -> Result<Signed, Error> {
        let ca = self.ca()?;
        let c = &issued.certificate;
        let mut chain = vec![ca.certificate().to_pem()];
        chain.extend(ca.chain().iter().map(|c| c.to_pem()));
        Ok(Signed {
            certificate: c.to_pem(),
            chain,
            serial: c.serial_hex(),
            subject: issued.subject.to_string(),
            names: issued.names.iter().map(ToString::to_string).collect(),
            not_before: c.not_before(),
            not_after: c.not_after(),
            renew_after: c.renew_after(renew_fraction.unwrap_or(0.5))?,
            fingerprint: c.fingerprint_sha256(),
        })
    }

    fn crl(&self, c: &CrlRequest) -> Result<Out<String>, Error> {
        let revoked = c
            .revoked
            .iter()
            .map(|r| {
                Ok(Revoked {
                    serial: crate::unhex("serial", &r.serial, 32)?,
                    revoked_at: r.revoked_at,
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let now = time(c.now)?;
        let ca = self.ca()?;
        if ca.key().is_none() {
            let tbs = ca.crl_unsigned(&revoked, now, c.next_update_secs, c.number)?;
            return Ok(Out::Ask(Box::new((
                SignAsk {
                    scheme: self.scheme()?,
                    tbs: tbs.der.clone(),
                },
                Finish::Crl(tbs),
            ))));
        }
        Ok(Out::Done(crl_pem(&ca.crl(
            &revoked,
            now,
            c.next_update_secs,
            c.number,
        )?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(g: &mut Guest, json: serde_json::Value) -> serde_json::Value {
        serde_json::from_slice(&g.handle(json.to_string().as_bytes())).unwrap()
    }

    #[test]
    fn protocol_round_trip_and_errors() {
        let mut g = Guest::default();
        let mut rng = SeedRng::from_seed([9; 32]);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ca = CertificateAuthority::new_root(&crate::CaParams::new("Sandbox CA"), now, &mut rng)
            .unwrap();

        let r = call(
            &mut g,
            serde_json::json!({"op": "loadCa", "certPem": ca.certificate().to_pem(), "keyPem": ca.key().unwrap().to_pkcs8_pem().unwrap().as_str(), "passphrase": null}),
        );
        assert_eq!(r["ok"]["subject"], "CN=Sandbox CA", "{r}");
        let key = crate::KeyPair::generate(crate::Algorithm::P256, &mut rng);
        let csr = crate::CsrRequest {
            subject: crate::Subject::default(),
            names: vec![SanName::dns("s.example.com").unwrap()],
        }
        .sign(&key)
        .unwrap();
        let req = |seed: &str| serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {}, "identity": "s.example.com", "lifetimeSecs": null, "now": 1_800_000_000, "seed": seed, "renewFraction": null});
        let a = call(&mut g, req(&"11".repeat(32)));
        assert_eq!(a["ok"]["serial"].as_str().unwrap().len(), 40, "{a}");
        let b = call(&mut g, req(&"22".repeat(32)));
        assert_eq!(a["ok"]["names"][0], "DNS:s.example.com", "{a}");
        assert_ne!(a["ok"]["serial"], b["ok"]["serial"]);
        assert_eq!(
            a["ok"]["renewAfter"],
            a["ok"]["notBefore"].as_i64().unwrap() + 43_230
        );
        let crl = call(
            &mut g,
            serde_json::json!({"op": "crl", "revoked": [{"serial": a["ok"]["serial"], "revokedAt": 1_800_000_100, "reason": 1}, {"serial": b["ok"]["serial"], "revokedAt": 1_800_000_100}], "now": 1_800_000_200, "nextUpdateSecs": 3600, "number": 1}),
        );
        assert!(
            crl["ok"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN X509 CRL-----"),
            "{crl}"
        );
        for bad in [
            serde_json::json!({"op": "nope"}),
            serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {"bogus": 1}, "now": 0, "seed": "00".repeat(32)}),
            serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {}, "now": 0, "seed": "zz"}),
            serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {}, "now": 0, "seed": "é".repeat(32)}),
            serde_json::json!({"op": "crl", "revoked": [{"serial": "aéb", "revokedAt": 0}], "now": 0, "nextUpdateSecs": 1, "number": 1}),
            serde_json::json!({"op": "crl", "revoked": [{"serial": "0a", "revokedAt": 0, "reason": 7}], "now": 0, "nextUpdateSecs": 1, "number": 1}),
            serde_json::json!({"op": "spin"}),
        ] {
            assert_eq!(call(&mut g, bad)["error"]["code"], "invalid_parameter");
        }
        let v: serde_json::Value = serde_json::from_slice(&g.handle(b"{not json")).unwrap();
        assert_eq!(v["error"]["code"], "invalid_parameter");
        let v: serde_json::Value =
            serde_json::from_slice(&g.handle(&vec![b' '; MAX_REQUEST_BYTES + 1])).unwrap();
        assert_eq!(v["error"]["code"], "too_large");
    }

    #[test]
    fn typed_ends_agree_and_replies_with_missing_or_renamed_fields_are_errors() {
        let mut g = Guest::default();
        let mut rng = SeedRng::from_seed([3; 32]);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ca = CertificateAuthority::new_root(&crate::CaParams::new("Typed CA"), now, &mut rng)
            .unwrap();
        let load = Request::LoadCa(LoadCa {
            cert_pem: ca.certificate().to_pem(),
            key_pem: Some(ca.key().unwrap().to_pkcs8_pem().unwrap().to_string()),
            passphrase: None,
            public_urls: None,
            host_verifies: false,
            jwt_key_pem: None,
            jwt_public_key_pem: None,
        });
        assert!(!format!("{load:?}").contains("PRIVATE"));
        let loaded: Loaded = decode_reply(&g.handle(&encode_request(&load).unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.subject, "CN=Typed CA");
        let good = br#"{"ok":{"subject":"CN=x","notAfter":1,"fingerprint":"ab"}}"#;
        assert!(decode_reply::<Loaded>(good).unwrap().is_ok());
        for bad in [
            &br#"{"ok":{"subject":"CN=x","notAfter":1}}"#[..],
            br#"{"ok":{"subject":"CN=x","not_after":1,"fingerprint":"ab"}}"#,
            br#"{"ok":{"subject":"CN=x","notAfter":1,"fingerprint":"ab","extra":1}}"#,
            br#"{"ok":{"subject":"CN=x","notAfter":"1","fingerprint":"ab"}}"#,
            br#"{"fine":{}}"#,
            br#"{"error":{"code":"x"}}"#,
            b"",
        ] {
            assert!(
                decode_reply::<Loaded>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let refused = decode_reply::<Signed>(br#"{"error":{"code":"policy","message":"no"}}"#);
        assert_eq!(refused.unwrap().unwrap_err().code, "policy");
    }

    /// With the key outside, the guest asks for the CSR's check, then for a signature over the
    /// TBS it built; the host's signature makes the certificate, which verifies under the CA.
    /// A CRL is asked for the same way; an answer nobody asked for is refused.
    #[test]
    fn a_guest_without_the_key_asks_the_host_to_sign() {
        let mut rng = SeedRng::from_seed([4; 32]);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ca = CertificateAuthority::new_root(&crate::CaParams::new("Outside CA"), now, &mut rng)
            .unwrap();
        let key = ca.key().unwrap();
        let mut g = Guest::default();
        let mut load = LoadCa {
            cert_pem: ca.certificate().to_pem(),
            key_pem: None,
            passphrase: None,
            public_urls: None,
            host_verifies: false,
            jwt_key_pem: None,
            jwt_public_key_pem: None,
        };
        let refused =
            decode_reply::<Loaded>(&g.handle(&encode_request(&Request::LoadCa(load)).unwrap()));
        assert!(refused.unwrap().unwrap_err().message.contains("verify"));
        load = LoadCa {
            cert_pem: ca.certificate().to_pem(),
            key_pem: None,
            passphrase: None,
            public_urls: None,
            host_verifies: true,
            jwt_key_pem: None,
            jwt_public_key_pem: None,
        };
        decode_reply::<Loaded>(&g.handle(&encode_request(&Request::LoadCa(load)).unwrap()))
            .unwrap()
            .unwrap();
        let stray = Request::Signature(SignatureReply { signature: vec![1] });
        let r = decode_reply::<Signed>(&g.handle(&encode_request(&stray).unwrap())).unwrap();
        assert!(r.unwrap_err().message.contains("without a pending"));

        let leaf = crate::KeyPair::generate(crate::Algorithm::P256, &mut rng);
        let csr = crate::CsrRequest {
            subject: crate::Subject::default(),
            names: vec![SanName::dns("o.example.com").unwrap()],
        }
        .sign(&leaf)
        .unwrap();
        let sign = serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {}, "identity": "o.example.com", "lifetimeSecs": null, "now": 1_800_000_000, "seed": "33".repeat(32), "renewFraction": null});
        let ask = g.handle(sign.to_string().as_bytes());
        let check = VerifyAsk::from_reply(&ask).unwrap().unwrap();
        assert_eq!(check.spki, leaf.public_key().spki_der());
        let resumed =
            g.handle(&encode_request(&Request::Verified(Verdict { valid: true })).unwrap());
        let ask = SignAsk::from_reply(&resumed).unwrap().unwrap();
        assert_eq!(ask.scheme, SignScheme::EcdsaP256Sha256);
        let signature = key.sign(&ask.tbs);
        let done =
            g.handle(&encode_request(&Request::Signature(SignatureReply { signature })).unwrap());
        let signed: Signed = decode_reply(&done).unwrap().unwrap();
        let cert = crate::Certificate::parse(signed.certificate.as_bytes()).unwrap();
        crate::chain::check_issued_by(&cert, ca.certificate()).unwrap();
        assert_eq!(signed.names, ["DNS:o.example.com"]);

        let crl = serde_json::json!({"op": "crl", "revoked": [{"serial": signed.serial, "revokedAt": 1_800_000_100}], "now": 1_800_000_200, "nextUpdateSecs": 3600, "number": 2});
        let ask = SignAsk::from_reply(&g.handle(crl.to_string().as_bytes()))
            .unwrap()
            .unwrap();
        let signature = key.sign(&ask.tbs);
        let pem: String = decode_reply(
            &g.handle(&encode_request(&Request::Signature(SignatureReply { signature })).unwrap()),
        )
        .unwrap()
        .unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");
        // The pending ask is gone once answered: a second signature is refused.
        let again = Request::Signature(SignatureReply { signature: vec![2] });
        let r = decode_reply::<String>(&g.handle(&encode_request(&again).unwrap())).unwrap();
        assert!(r.is_err());
    }

    /// With the JWT authority's key in the host's store, the guest hands a JWT-SVID's signing
    /// input out as an ES256 sign ask; the host's DER signature makes a token that validates
    /// against the authority's public key, and is the one the key itself would have made.
    #[test]
    fn a_guest_without_the_jwt_key_asks_the_host_to_sign_the_jwt_svid() {
        let mut rng = SeedRng::from_seed([6; 32]);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ca =
            CertificateAuthority::new_root(&crate::CaParams::new("JWT CA"), now, &mut rng).unwrap();
        let jwt_key = crate::KeyPair::generate(crate::Algorithm::P256, &mut rng);
        let load = |key: Option<String>, public: Option<String>| LoadCa {
            cert_pem: ca.certificate().to_pem(),
            key_pem: None,
            passphrase: None,
            public_urls: None,
            host_verifies: true,
            jwt_key_pem: key,
            jwt_public_key_pem: public,
        };
        let mut g = Guest::default();
        let both = load(
            Some(jwt_key.to_pkcs8_pem().unwrap().to_string()),
            Some(jwt_key.public_key().to_pem()),
        );
        let r = decode_reply::<Loaded>(&g.handle(&encode_request(&Request::LoadCa(both)).unwrap()));
        assert!(r.unwrap().unwrap_err().message.contains("not both"));
        let ed = crate::KeyPair::generate(crate::Algorithm::Ed25519, &mut rng);
        let wrong = load(None, Some(ed.public_key().to_pem()));
        let r =
            decode_reply::<Loaded>(&g.handle(&encode_request(&Request::LoadCa(wrong)).unwrap()));
        assert_eq!(r.unwrap().unwrap_err().code, "invalid_key");
        let loaded: Loaded = decode_reply(
            &g.handle(
                &encode_request(&Request::LoadCa(load(
                    None,
                    Some(jwt_key.public_key().to_pem()),
                )))
                .unwrap(),
            ),
        )
        .unwrap()
        .unwrap();
        let info = loaded.jwt_authority.unwrap();
        let authority = crate::JwtAuthority::new(jwt_key.public_key().clone());
        assert_eq!(info.kid, authority.kid);

        let request = Request::SignJwt(JwtRequest {
            spiffe_id: "spiffe://example.org/web".into(),
            audience: vec!["db".into()],
            lifetime_secs: 300,
            issuer: None,
            now: now.unix_timestamp(),
        });
        let ask = SignAsk::from_reply(&g.handle(&encode_request(&request).unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(ask.scheme, SignScheme::EcdsaP256Sha256);
        let input = String::from_utf8(ask.tbs.clone()).unwrap();
        let signature = Request::Signature(SignatureReply {
            signature: jwt_key.sign(&ask.tbs),
        });
        let signed: JwtSigned = decode_reply(&g.handle(&encode_request(&signature).unwrap()))
            .unwrap()
            .unwrap();
        assert!(signed.token.starts_with(&input));
        assert_eq!(signed.expires_at, now.unix_timestamp() + 300);
        let v = crate::validate_jwt_svid(&signed.token, &[authority], "db", now.unix_timestamp())
            .unwrap();
        assert_eq!(v.claims.spiffe_id.to_string(), "spiffe://example.org/web");
        let held = crate::JwtSvidClaims {
            spiffe_id: crate::SpiffeId::parse("spiffe://example.org/web").unwrap(),
            audience: vec!["db".into()],
            issued_at: now.unix_timestamp(),
            expires_at: now.unix_timestamp() + 300,
            issuer: None,
        };
        assert_eq!(
            signed.token,
            crate::sign_jwt_svid(&jwt_key, &info.kid, &held).unwrap()
        );
        // A signature that is not DER ECDSA makes no token.
        let ask = g.handle(&encode_request(&request).unwrap());
        assert!(SignAsk::from_reply(&ask).is_some());
        let junk = Request::Signature(SignatureReply {
            signature: vec![0; 64],
        });
        let r = decode_reply::<JwtSigned>(&g.handle(&encode_request(&junk).unwrap())).unwrap();
        assert_eq!(r.unwrap_err().code, "bad_signature");
    }
}
