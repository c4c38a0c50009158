//! Certificates as DER/PEM, with the few facts callers need after issuance.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};
use crate::pem;

/// An X.509 certificate (DER), parsed enough to be trusted as well-formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

impl Certificate {
    /// Read one certificate from PEM (`CERTIFICATE`) or DER.
    pub fn parse(input: &[u8]) -> Result<Self> {
        Self::from_der(pem::der_from_pem_or_der(
            "certificate",
            input,
            &["CERTIFICATE"],
        )?)
    }

    /// Read every certificate of a PEM bundle (or one DER certificate), in order.
    pub fn parse_all(input: &[u8]) -> Result<Vec<Self>> {
        if pem::is_pem(input) {
            pem::decode_all("certificate bundle", input)?
                .into_iter()
                .map(|b| {
                    if b.label != "CERTIFICATE" {
                        return Err(Error::Pem(format!(
                            "certificate bundle: unexpected PEM block \"{}\"",
                            b.label
                        )));
                    }
                    Self::from_der(b.der)
                })
                .collect()
        } else {
            Ok(vec![Self::parse(input)?])
        }
    }

    /// Wrap DER after checking it parses as a single certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Self> {
        pem::check_size("certificate", &der)?;
        let (serial, not_before, not_after) = {
            let cert = parse_x509(&der)?;
            (
                cert.raw_serial().to_vec(),
                cert.validity().not_before.timestamp(),
                cert.validity().not_after.timestamp(),
            )
        };
        Ok(Certificate {
            der,
            serial,
            not_before,
            not_after,
        })
    }

    /// DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM text.
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    /// Serial number as lower-case hex (big-endian, as encoded).
    pub fn serial_hex(&self) -> String {
        pem::hex(&self.serial)
    }

    /// notBefore as Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// notAfter as Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// SHA-256 of the DER, as `openssl x509 -fingerprint -sha256` shows it (without colons).
    pub fn fingerprint_sha256(&self) -> String {
        pem::hex(&Sha256::digest(&self.der))
    }

    /// The certificate's public key.
    pub fn public_key(&self) -> Result<crate::PublicKey> {
        crate::PublicKey::from_parsed(parse_x509(&self.der)?.public_key())
    }

    /// When to renew: `fraction` of the lifetime after notBefore (SPIRE renews at one half).
    pub fn renew_after(&self, fraction: f64) -> Result<i64> {
        renew_after(self.not_before, self.not_after, fraction)
    }
}

/// Renewal time `fraction` (0 < f ≤ 1) of the way from `not_before` to `not_after`.
pub fn renew_after(not_before: i64, not_after: i64, fraction: f64) -> Result<i64> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::InvalidParameter(format!(
            "renewal fraction must be in (0, 1], got {fraction}"
        )));
    }
    let lifetime = (not_after - not_before).max(0) as f64;
    Ok(not_before + (lifetime * fraction) as i64)
}

pub(crate) fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| Error::malformed("certificate", e))?;
    if !rest.is_empty() {
        return Err(Error::malformed(
            "certificate",
            "trailing data after the certificate",
        ));
    }
    Ok(cert)
}

pub(crate) fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// RFC 3339 text for a Unix time, UTC, without pulling in a formatting library.
pub(crate) fn rfc3339(secs: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}
