//! Chain verification at a given time: leaf → intermediates → a self-signed root the caller trusts.

use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use crate::certificate::{parse_x509, Certificate};
use crate::error::{Error, Result};
use crate::public_key::PublicKey;

/// Longest chain accepted.
const MAX_CHAIN: usize = 8;

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedChain {
    /// Subjects from leaf to root.
    pub subjects: Vec<String>,
    /// The earliest notAfter along the chain (Unix seconds): the chain is valid until then.
    pub valid_until: i64,
}

/// Verify `chain` (leaf first, the trusted self-signed root last) at Unix time `at`: every
/// signature, validity period, issuer/subject link, CA flag, keyCertSign and path length.
/// Unknown critical extensions and name constraints are refused rather than ignored.
pub fn verify_chain(chain: &[Certificate], at: i64) -> Result<VerifiedChain> {
    if chain.is_empty() {
        return Err(Error::Chain("no certificates given".into()));
    }
    if chain.len() > MAX_CHAIN {
        return Err(Error::Chain(format!("more than {MAX_CHAIN} certificates")));
    }
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .map(|c| parse_x509(c.der()))
        .collect::<Result<_>>()?;
    let mut subjects = Vec::with_capacity(parsed.len());
    let mut valid_until = i64::MAX;
    for (i, cert) in parsed.iter().enumerate() {
        let label = format!("certificate {} ({})", i, cert.subject());
        subjects.push(cert.subject().to_string());
        let v = cert.validity();
        if at < v.not_before.timestamp() {
            return Err(Error::Chain(format!("{label} is not valid yet")));
        }
        if at > v.not_after.timestamp() {
            return Err(Error::Chain(format!("{label} has expired")));
        }
        valid_until = valid_until.min(v.not_after.timestamp());
        check_critical_extensions(cert, &label)?;
        let issuer = parsed.get(i + 1).unwrap_or(cert);
        if i > 0 || parsed.len() == 1 {
            // Every certificate above the leaf (and a lone root) must be a CA allowed to sign certs.
            check_ca(cert, i.saturating_sub(1), &label)?;
        }
        if cert.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(Error::Chain(format!(
                "{label} is issued by \"{}\", but the next certificate is \"{}\"",
                cert.issuer(),
                issuer.subject()
            )));
        }
        signed_by(cert, issuer).map_err(|e| Error::Chain(format!("{label}: {e}")))?;
    }
    Ok(VerifiedChain {
        subjects,
        valid_until,
    })
}

fn check_ca(cert: &X509Certificate<'_>, intermediates_below: usize, label: &str) -> Result<()> {
    let bc = cert
        .basic_constraints()
        .map_err(|e| Error::Chain(format!("{label}: {e}")))?
        .filter(|bc| bc.value.ca)
        .ok_or_else(|| Error::Chain(format!("{label} is not a CA")))?;
    if let Some(n) = bc.value.path_len_constraint {
        if intermediates_below > n as usize {
            return Err(Error::Chain(format!(
                "{label} allows {n} intermediate CA(s) below it, the chain has {intermediates_below}"
            )));
        }
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        if !ku.value.key_cert_sign() {
            return Err(Error::Chain(format!(
                "{label} lacks the keyCertSign key usage"
            )));
        }
    }
    Ok(())
}

fn check_critical_extensions(cert: &X509Certificate<'_>, label: &str) -> Result<()> {
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::ParseError { error } => {
                return Err(Error::Chain(format!(
                    "{label}: extension {}: {error}",
                    ext.oid
                )))
            }
            ParsedExtension::NameConstraints(_) if ext.critical => {
                return Err(Error::Chain(format!(
                    "{label}: name constraints are not evaluated by this verifier"
                )))
            }
            ParsedExtension::UnsupportedExtension { .. } if ext.critical => {
                return Err(Error::Chain(format!(
                    "{label}: unknown critical extension {}",
                    ext.oid
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Check that `cert` was issued by `issuer`: its issuer name is the issuer's subject and the
/// issuer's key verifies its signature. No validity check: a renewal may come within a grace
/// period after expiry, which the caller decides.
pub fn check_issued_by(cert: &Certificate, issuer: &Certificate) -> Result<()> {
    let (c, i) = (parse_x509(cert.der())?, parse_x509(issuer.der())?);
    if c.issuer().as_raw() != i.subject().as_raw() {
        return Err(Error::Chain(format!(
            "the certificate is issued by \"{}\", not by this CA (\"{}\")",
            c.issuer(),
            i.subject()
        )));
    }
    signed_by(&c, &i)
        .map_err(|e| Error::Chain(format!("the certificate is not signed by this CA: {e}")))
}

/// `cert`'s signature verifies with `issuer`'s key (and its two algorithm fields agree).
fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Result<()> {
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(Error::Chain(
            "the two signature algorithm fields differ".into(),
        ));
    }
    let key = PublicKey::from_parsed(issuer.public_key())?;
    crate::signature::verify_x509(
        &cert.signature_algorithm,
        &key,
        cert.tbs_certificate.as_ref(),
        &cert.signature_value.data,
        "certificate",
    )
}
