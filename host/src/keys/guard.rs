//! What the host checks before its key store signs a TBSCertificate the guest built: a guest
//! that parses hostile CSRs may be compromised, and it must not be able to mint anything with a
//! key it cannot see. Every field that makes a certificate powerful is compared with what the
//! host knows on its own (the CA certificate, the CSR key it verified itself, the profile's
//! bounds); anything else is refused and nothing is signed.

use x509_parser::certificate::TbsCertificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    Oid, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_NAME_CONSTRAINTS,
};
use x509_parser::prelude::{FromDer, X509Version};

/// What the host knows, without the guest, about the certificate one request may produce.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The CA certificate's subject, DER (the TBS's issuer must be exactly this).
    pub issuer: &'a [u8],
    /// The CA's subject key identifier (the TBS's authority key identifier).
    pub issuer_key_id: &'a [u8],
    /// The signature algorithm the key store signs with (the TBS's `signature` field).
    pub algorithm: Oid<'static>,
    /// The SubjectPublicKeyInfo, DER, of the CSR the host verified for this request.
    pub subject_key: &'a [u8],
    /// Earliest notBefore allowed, Unix seconds (now minus the profile's backdating).
    pub not_before_min: i64,
    /// Latest notAfter allowed, Unix seconds (now plus the profile's longest lifetime, and never
    /// past the CA's own notAfter).
    pub not_after_max: i64,
    /// The request named an intermediate profile: CA:true (and keyCertSign, name constraints)
    /// may be asked for.
    pub may_be_ca: bool,
}

/// Why a TBSCertificate was refused (a `sandbox_violation`: the guest asked for what it must not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The bytes are not exactly one DER TBSCertificate (v3).
    NotTbs(String),
    /// Another issuer name.
    Issuer,
    /// No authority key identifier, or another one.
    AuthorityKeyId,
    /// Another signature algorithm than the key store's.
    Algorithm,
    /// Another public key than the CSR's.
    SubjectKey,
    /// A validity outside the request's bounds.
    Validity,
    /// CA:true, keyCertSign, cRLSign or name constraints without an intermediate profile.
    CaPowers,
    /// A CRL that does not say what the host asked (its number or revoked entries).
    Entries(String),
    /// The serial of a certificate already in the ledger.
    ReusedSerial,
    /// A JWT-SVID signing input that is not the token the host asked for.
    Jwt(String),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::NotTbs(m) => write!(f, "not a TBSCertificate: {m}"),
            Violation::Issuer => f.write_str("the issuer is not this CA"),
            Violation::AuthorityKeyId => {
                f.write_str("the authority key identifier is not this CA's")
            }
            Violation::Algorithm => f.write_str("the signature algorithm is not the CA key's"),
            Violation::SubjectKey => f.write_str("the public key is not the CSR's"),
            Violation::Validity => f.write_str("the validity is outside the profile's bounds"),
            Violation::CaPowers => f.write_str("CA powers without an intermediate profile"),
            Violation::Entries(m) => write!(f, "the CRL differs from the host's list: {m}"),
            Violation::ReusedSerial => f.write_str("the serial of a certificate already issued"),
            Violation::Jwt(m) => write!(f, "the JWT-SVID is not the one the host asked for: {m}"),
        }
    }
}

impl std::error::Error for Violation {}

/// Check `tbs` against `e`; on success, its serial number (big-endian bytes as encoded), which
/// the caller must find unused in the ledger before signing.
pub fn check_tbs_certificate(tbs: &[u8], e: &Expected<'_>) -> Result<Vec<u8>, Violation> {
    let (rest, t) =
        TbsCertificate::from_der(tbs).map_err(|err| Violation::NotTbs(err.to_string()))?;
    if !rest.is_empty() {
        return Err(Violation::NotTbs(format!("{} bytes after it", rest.len())));
    }
    if t.version != X509Version::V3 || t.issuer_uid.is_some() || t.subject_uid.is_some() {
        return Err(Violation::NotTbs(
            "only v3 without unique identifiers".into(),
        ));
    }
    if t.issuer.as_raw() != e.issuer {
        return Err(Violation::Issuer);
    }
    if t.signature.algorithm != e.algorithm {
        return Err(Violation::Algorithm);
    }
    if t.subject_pki.raw != e.subject_key {
        return Err(Violation::SubjectKey);
    }
    let (not_before, not_after) = (
        t.validity.not_before.timestamp(),
        t.validity.not_after.timestamp(),
    );
    if not_before < e.not_before_min || not_after > e.not_after_max || not_after < not_before {
        return Err(Violation::Validity);
    }
    let aki = t
        .get_extension_unique(&OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .map_err(|err| Violation::NotTbs(err.to_string()))?
        .and_then(|x| match &x.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref(),
            _ => None,
        });
    if aki.map(|k| k.0) != Some(e.issuer_key_id) {
        return Err(Violation::AuthorityKeyId);
    }
    if !e.may_be_ca {
        let ca = t
            .basic_constraints()
            .map_err(|err| Violation::NotTbs(err.to_string()))?
            .is_some_and(|b| b.value.ca);
        let signs = t
            .key_usage()
            .map_err(|err| Violation::NotTbs(err.to_string()))?
            .is_some_and(|k| k.value.key_cert_sign() || k.value.crl_sign());
        let constrains = t
            .get_extension_unique(&OID_X509_EXT_NAME_CONSTRAINTS)
            .map_err(|err| Violation::NotTbs(err.to_string()))?
            .is_some();
        if ca || signs || constrains {
            return Err(Violation::CaPowers);
        }
    }
    // None may appear twice (x509-parser keeps duplicates; its map refuses them), and every
    // known one must parse.
    t.extensions_map()
        .map_err(|err| Violation::NotTbs(err.to_string()))?;
    for x in t.extensions() {
        if let ParsedExtension::ParseError { error } = x.parsed_extension() {
            return Err(Violation::NotTbs(format!("extension {}: {error}", x.oid)));
        }
    }
    Ok(t.raw_serial().to_vec())
}

/// What the host asked a CRL to say: the guest must build exactly this TBSCertList.
#[derive(Clone, Debug)]
pub struct ExpectedCrl<'a> {
    /// The CA certificate's subject, DER.
    pub issuer: &'a [u8],
    /// The CA's subject key identifier.
    pub issuer_key_id: &'a [u8],
    /// The key store's signature algorithm.
    pub algorithm: Oid<'static>,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
    /// The CRL number.
    pub number: u64,
    /// The revoked serials (big-endian bytes as the certificates encode them) and times.
    pub revoked: Vec<(Vec<u8>, i64)>,
}

/// Check a TBSCertList against `e`: the issuer, algorithm, times, number and exactly the
/// revoked entries the host listed (a guest must not drop a revocation or add one).
pub fn check_tbs_crl(tbs: &[u8], e: &ExpectedCrl<'_>) -> Result<(), Violation> {
    use x509_parser::oid_registry::OID_X509_EXT_CRL_NUMBER;
    use x509_parser::revocation_list::TbsCertList;
    let (rest, t) = TbsCertList::from_der(tbs).map_err(|err| Violation::NotTbs(err.to_string()))?;
    if !rest.is_empty() {
        return Err(Violation::NotTbs(format!("{} bytes after it", rest.len())));
    }
    if t.issuer.as_raw() != e.issuer {
        return Err(Violation::Issuer);
    }
    if t.signature.algorithm != e.algorithm {
        return Err(Violation::Algorithm);
    }
    if t.this_update.timestamp() != e.this_update
        || t.next_update.map(|n| n.timestamp()) != Some(e.next_update)
    {
        return Err(Violation::Validity);
    }
    let mut aki = None;
    let mut number = None;
    for x in t.extensions() {
        match x.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) if aki.is_none() => {
                aki = Some(a.key_identifier.as_ref().map(|k| k.0))
            }
            ParsedExtension::CRLNumber(n)
                if number.is_none() && x.oid == OID_X509_EXT_CRL_NUMBER =>
            {
                number = Some(n.clone())
            }
            _ => {
                return Err(Violation::NotTbs(format!(
                    "extension {} is not one this CA's CRLs carry",
                    x.oid
                )))
            }
        }
    }
    if aki != Some(Some(e.issuer_key_id)) {
        return Err(Violation::AuthorityKeyId);
    }
    if number != Some(e.number.into()) {
        return Err(Violation::Entries("the CRL number".into()));
    }
    let mut listed: Vec<(Vec<u8>, i64)> = t
        .revoked_certificates
        .iter()
        .map(|r| (r.raw_serial().to_vec(), r.revocation_date.timestamp()))
        .collect();
    let mut wanted = e.revoked.clone();
    listed.sort();
    wanted.sort();
    if listed != wanted {
        return Err(Violation::Entries(format!(
            "{} entries where the host listed {}",
            listed.len(),
            wanted.len()
        )));
    }
    Ok(())
}

/// What the host asked a JWT-SVID to say (the authority's `kid`, the entry's SPIFFE ID, the
/// caller's audience, the host's clock and the entry's TTL, the issuer).
#[derive(Clone, Debug)]
pub struct ExpectedJwt<'a> {
    /// The JWT authority's key id (`kid`).
    pub kid: &'a str,
    /// `sub`.
    pub spiffe_id: &'a str,
    /// `aud`.
    pub audience: &'a [String],
    /// `iat`.
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// `iss`, when the CA publishes one.
    pub issuer: Option<&'a str>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtHeader {
    alg: String,
    kid: String,
    typ: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtClaims {
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    iss: Option<String>,
}

/// Check a JWS signing input (`BASE64URL(header).BASE64URL(claims)`) the guest asks the JWT
/// authority's key to sign: exactly ES256 with this authority's `kid`, and exactly the claims the
/// host asked for; no other header or claim (a `jku`, a `nbf`, a second `aud`), no duplicate.
pub fn check_jwt_svid_input(input: &[u8], e: &ExpectedJwt<'_>) -> Result<(), Violation> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let bad = |m: String| Violation::Jwt(m);
    let text = std::str::from_utf8(input).map_err(|_| bad("not UTF-8".into()))?;
    let mut parts = text.split('.');
    let (Some(h), Some(c), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not two base64url parts".into()));
    };
    let decode = |what: &str, part: &str| {
        Base64UrlUnpadded::decode_vec(part).map_err(|_| bad(format!("the {what} is not base64url")))
    };
    let header: JwtHeader = serde_json::from_slice(&decode("header", h)?)
        .map_err(|err| bad(format!("the header: {err}")))?;
    let claims: JwtClaims = serde_json::from_slice(&decode("claims", c)?)
        .map_err(|err| bad(format!("the claims: {err}")))?;
    if header.alg != "ES256" || header.typ != "JWT" || header.kid != e.kid {
        return Err(bad("another alg, typ or kid".into()));
    }
    if claims.sub != e.spiffe_id {
        return Err(bad("another subject".into()));
    }
    if claims.aud != e.audience {
        return Err(bad("another audience".into()));
    }
    if claims.iat != e.issued_at || claims.exp != e.expires_at {
        return Err(bad("another lifetime".into()));
    }
    if claims.iss.as_deref() != e.issuer {
        return Err(bad("another issuer".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_pki::{
        Algorithm, CaParams, CertificateAuthority, CsrRequest, IssueOptions, KeyPair,
        OffsetDateTime, ParsedCsr, Profile, SanName, SeedRng, Subject,
    };
    use x509_parser::certificate::X509Certificate;
    use x509_parser::oid_registry::{OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ED25519};

    const NOW: i64 = 1_800_000_000;

    fn at() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    fn root(seed: u8) -> CertificateAuthority {
        CertificateAuthority::new_root(
            &CaParams::new("Guard CA"),
            at(),
            &mut SeedRng::from_seed([seed; 32]),
        )
        .unwrap()
    }

    fn new_key(seed: u8) -> KeyPair {
        KeyPair::generate(Algorithm::P256, &mut SeedRng::from_seed([seed; 32]))
    }

    /// The TBS of the certificate `ca` issues for `key` under the default profile.
    fn issued_tbs(ca: &CertificateAuthority, key: &KeyPair) -> Vec<u8> {
        let csr = CsrRequest {
            subject: Subject::default(),
            names: vec![SanName::dns("w.example.com").unwrap()],
        }
        .sign(key)
        .unwrap();
        let csr = ParsedCsr::parse(csr.to_pem().as_bytes()).unwrap();
        let opts = IssueOptions {
            identity: Some(SanName::dns("w.example.com").unwrap()),
            ..Default::default()
        };
        let issued = ca
            .issue(
                &csr,
                &Profile::default(),
                &opts,
                at(),
                &mut SeedRng::from_seed([9; 32]),
            )
            .unwrap();
        tbs_of(issued.certificate.der())
    }

    fn parsed(cert_der: &[u8]) -> X509Certificate<'_> {
        X509Certificate::from_der(cert_der).unwrap().1
    }

    fn tbs_of(cert_der: &[u8]) -> Vec<u8> {
        parsed(cert_der).tbs_certificate.as_ref().to_vec()
    }

    /// What the host knows: the CA's subject and key id, the verified CSR's key.
    struct Known {
        issuer: Vec<u8>,
        key_id: Vec<u8>,
        subject_key: Vec<u8>,
    }

    fn known(ca: &CertificateAuthority, subject_key: &[u8]) -> Known {
        Known {
            issuer: parsed(ca.certificate().der()).subject().as_raw().to_vec(),
            key_id: ca.key_identifier(),
            subject_key: subject_key.to_vec(),
        }
    }

    fn expected(k: &Known) -> Expected<'_> {
        Expected {
            issuer: &k.issuer,
            issuer_key_id: &k.key_id,
            algorithm: OID_SIG_ECDSA_WITH_SHA256,
            subject_key: &k.subject_key,
            not_before_min: NOW - 300,
            not_after_max: NOW + 90 * 86_400,
            may_be_ca: false,
        }
    }

    #[test]
    fn what_the_guest_should_ask_for_passes_with_its_serial() {
        let (ca, key) = (root(7), new_key(8));
        let tbs = issued_tbs(&ca, &key);
        let k = known(&ca, key.public_key().spki_der());
        let serial = check_tbs_certificate(&tbs, &expected(&k)).unwrap();
        let (_, t) = TbsCertificate::from_der(&tbs).unwrap();
        assert_eq!(serial, t.raw_serial());
        assert!(!serial.is_empty());
    }

    #[test]
    fn what_a_lying_guest_asks_for_is_refused() {
        let (ca, key) = (root(7), new_key(8));
        let k = known(&ca, key.public_key().spki_der());
        let good = issued_tbs(&ca, &key);
        let not_tbs = Violation::NotTbs(String::new());
        let rows: Vec<(&str, Vec<u8>, Expected<'_>, Violation)> = vec![
            (
                "a foreign public key",
                issued_tbs(&ca, &new_key(1)),
                expected(&k),
                Violation::SubjectKey,
            ),
            (
                "another issuer (the same name, another key)",
                issued_tbs(&root(2), &key),
                expected(&k),
                Violation::AuthorityKeyId,
            ),
            (
                "a validity beyond the profile",
                good.clone(),
                Expected {
                    not_after_max: NOW + 3600,
                    ..expected(&k)
                },
                Violation::Validity,
            ),
            (
                "backdated beyond the profile",
                good.clone(),
                Expected {
                    not_before_min: NOW + 10,
                    ..expected(&k)
                },
                Violation::Validity,
            ),
            (
                "another signature algorithm",
                good.clone(),
                Expected {
                    algorithm: OID_SIG_ED25519,
                    ..expected(&k)
                },
                Violation::Algorithm,
            ),
            (
                "trailing bytes",
                [good.clone(), vec![0]].concat(),
                expected(&k),
                not_tbs.clone(),
            ),
            ("not DER", b"hello".to_vec(), expected(&k), not_tbs.clone()),
            (
                "a whole certificate",
                ca.certificate().der().to_vec(),
                expected(&k),
                not_tbs.clone(),
            ),
            ("empty", Vec::new(), expected(&k), not_tbs.clone()),
            (
                "cut short",
                good[..good.len() - 1].to_vec(),
                expected(&k),
                not_tbs,
            ),
        ];
        for (what, tbs, e, want) in rows {
            let got = check_tbs_certificate(&tbs, &e).expect_err(what);
            match (&got, &want) {
                (Violation::NotTbs(_), Violation::NotTbs(_)) => {}
                _ => assert_eq!(got, want, "{what}"),
            }
        }
        // CA:true (an intermediate's TBS) under a leaf profile; accepted only when the request
        // named an intermediate profile.
        let sub = ca
            .new_intermediate(
                &CaParams::new("Sub"),
                at(),
                &mut SeedRng::from_seed([4; 32]),
            )
            .unwrap();
        let sub_der = sub.certificate().der();
        let sub_k = known(&ca, parsed(sub_der).public_key().raw);
        let for_sub = |may_be_ca| Expected {
            not_before_min: 0,
            not_after_max: i64::MAX,
            may_be_ca,
            ..expected(&sub_k)
        };
        let sub_tbs = tbs_of(sub_der);
        assert_eq!(
            check_tbs_certificate(&sub_tbs, &for_sub(false)),
            Err(Violation::CaPowers)
        );
        assert!(check_tbs_certificate(&sub_tbs, &for_sub(true)).is_ok());
    }

    /// Every prefix of a good TBS is refused; every single-byte change of it is judged without a
    /// panic, and none inside the issuer name or the subject public key passes.
    #[test]
    fn truncated_and_flipped_tbs_never_panic_and_never_pass_changed() {
        let (ca, key) = (root(7), new_key(8));
        let good = issued_tbs(&ca, &key);
        let k = known(&ca, key.public_key().spki_der());
        for n in 0..good.len() {
            assert!(
                check_tbs_certificate(&good[..n], &expected(&k)).is_err(),
                "prefix {n}"
            );
        }
        let at = |part: &[u8]| {
            let start = good.windows(part.len()).position(|w| w == part).unwrap();
            start..start + part.len()
        };
        let judged = [at(&k.issuer), at(&k.subject_key)];
        for i in 0..good.len() {
            let mut t = good.clone();
            t[i] ^= 0x41;
            let verdict = check_tbs_certificate(&t, &expected(&k));
            if judged.iter().any(|r| r.contains(&i)) {
                assert!(verdict.is_err(), "byte {i} changed and passed");
            }
        }
    }

    /// A CRL's TBS: exactly the host's list passes; a dropped or added entry, another number,
    /// other times, another issuer, and broken bytes are refused.
    #[test]
    fn a_crl_must_say_what_the_host_asked() {
        let ca = root(7);
        let k = known(&ca, &[]);
        let now = at();
        let revoked = |serials: &[u8]| -> Vec<wasm_pki::Revoked> {
            serials
                .iter()
                .map(|s| wasm_pki::Revoked {
                    serial: vec![*s, 1, 2],
                    revoked_at: NOW - 60,
                    reason: Some(1),
                })
                .collect()
        };
        let tbs = |list: &[u8], number: u64| {
            ca.crl_unsigned(&revoked(list), now, 3600, number)
                .unwrap()
                .der
        };
        let want = |list: &[u8], number: u64| ExpectedCrl {
            issuer: &k.issuer,
            issuer_key_id: &k.key_id,
            algorithm: OID_SIG_ECDSA_WITH_SHA256,
            this_update: NOW,
            next_update: NOW + 3600,
            number,
            revoked: revoked(list)
                .into_iter()
                .map(|r| (r.serial, r.revoked_at))
                .collect(),
        };
        check_tbs_crl(&tbs(&[1, 2], 7), &want(&[1, 2], 7)).unwrap();
        check_tbs_crl(&tbs(&[2, 1], 7), &want(&[1, 2], 7)).unwrap();
        for (what, got, e) in [
            ("a dropped revocation", tbs(&[1], 7), want(&[1, 2], 7)),
            ("an added revocation", tbs(&[1, 2, 3], 7), want(&[1, 2], 7)),
            ("another number", tbs(&[1, 2], 8), want(&[1, 2], 7)),
            ("empty", Vec::new(), want(&[], 7)),
            (
                "a certificate's TBS",
                issued_tbs(&ca, &new_key(8)),
                want(&[], 7),
            ),
        ] {
            assert!(check_tbs_crl(&got, &e).is_err(), "{what}");
        }
        let other = ExpectedCrl {
            this_update: NOW + 1,
            ..want(&[1, 2], 7)
        };
        assert_eq!(
            check_tbs_crl(&tbs(&[1, 2], 7), &other),
            Err(Violation::Validity)
        );
        let k2 = known(&root(3), &[]);
        let foreign = ExpectedCrl {
            issuer_key_id: &k2.key_id,
            ..want(&[1, 2], 7)
        };
        assert_eq!(
            check_tbs_crl(&tbs(&[1, 2], 7), &foreign),
            Err(Violation::AuthorityKeyId)
        );
        let good = tbs(&[1, 2], 7);
        for n in 0..good.len() {
            assert!(
                check_tbs_crl(&good[..n], &want(&[1, 2], 7)).is_err(),
                "prefix {n}"
            );
        }
    }

    /// The signing input the core builds for the host's request passes; each field changed,
    /// added or duplicated, and any truncation, is refused.
    #[test]
    fn a_jwt_svid_must_say_what_the_host_asked() {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let aud = vec!["db".to_string()];
        let e = ExpectedJwt {
            kid: "k1",
            spiffe_id: "spiffe://example.org/web",
            audience: &aud,
            issued_at: NOW,
            expires_at: NOW + 300,
            issuer: Some("https://ca.example"),
        };
        let claims = |sub: &str, aud: Vec<String>, exp: i64| wasm_pki::JwtSvidClaims {
            spiffe_id: wasm_pki::SpiffeId::parse(sub).unwrap(),
            audience: aud,
            issued_at: NOW,
            expires_at: exp,
            issuer: Some("https://ca.example".into()),
        };
        let good = wasm_pki::jwt_svid_signing_input(
            "k1",
            &claims("spiffe://example.org/web", aud.clone(), NOW + 300),
        )
        .unwrap();
        check_jwt_svid_input(good.as_bytes(), &e).unwrap();
        let b64 = |s: &str| Base64UrlUnpadded::encode_string(s.as_bytes());
        let header = r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#;
        let body = r#"{"sub":"spiffe://example.org/web","aud":["db"],"exp":1800000300,"iat":1800000000,"iss":"https://ca.example"}"#;
        assert_eq!(good, format!("{}.{}", b64(header), b64(body)));
        let mut lies = vec![
            wasm_pki::jwt_svid_signing_input(
                "k2",
                &claims("spiffe://example.org/web", aud.clone(), NOW + 300),
            )
            .unwrap(),
            wasm_pki::jwt_svid_signing_input(
                "k1",
                &claims("spiffe://example.org/admin", aud.clone(), NOW + 300),
            )
            .unwrap(),
            wasm_pki::jwt_svid_signing_input(
                "k1",
                &claims(
                    "spiffe://example.org/web",
                    vec!["db".into(), "bank".into()],
                    NOW + 300,
                ),
            )
            .unwrap(),
            wasm_pki::jwt_svid_signing_input(
                "k1",
                &claims("spiffe://example.org/web", aud.clone(), NOW + 86_400),
            )
            .unwrap(),
        ];
        for (h, c) in [
            (r#"{"alg":"none","kid":"k1","typ":"JWT"}"#, body),
            (
                r#"{"alg":"ES256","kid":"k1","typ":"JWT","jku":"https://evil"}"#,
                body,
            ),
            (r#"{"alg":"ES256","kid":"k1","kid":"k1","typ":"JWT"}"#, body),
            (header, &body.replace(r#""iss""#, r#""nbf":0,"iss""#)),
            (header, &body.replace(r#""aud":["db"]"#, r#""aud":"db""#)),
            (header, &body.replace(r#","iss":"https://ca.example""#, "")),
            (header, "[]"),
        ] {
            lies.push(format!("{}.{}", b64(h), b64(c)));
        }
        lies.push(format!("{good}.AAAA"));
        lies.push(good.replace('.', ""));
        lies.push(format!("{}=.{}", b64(header), b64(body)));
        for cut in 0..good.len() {
            lies.push(good[..cut].to_string());
        }
        for lie in &lies {
            assert!(
                matches!(
                    check_jwt_svid_input(lie.as_bytes(), &e),
                    Err(Violation::Jwt(_))
                ),
                "passed: {lie}"
            );
        }
        assert!(check_jwt_svid_input(&[0xff, b'.', b'a'], &e).is_err());
    }
}
