//! Certificate revocation lists signed by a CA.

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::ca::CertificateAuthority;
use crate::error::{Error, Result};
use crate::pem;

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// Serial number bytes as encoded in the certificate.
    pub serial: Vec<u8>,
    /// When it was revoked, Unix seconds.
    pub revoked_at: i64,
    /// RFC 5280 §5.3.1 CRLReason code (0-10 but 7); `None` (or 0, `unspecified`) writes no
    /// reasonCode extension.
    pub reason: Option<u8>,
}

/// The RFC 5280 §5.3.1 CRLReason codes and their ASN.1 names (7 is not used).
pub const REASONS: [(u8, &str); 10] = [
    (0, "unspecified"),
    (1, "keyCompromise"),
    (2, "cACompromise"),
    (3, "affiliationChanged"),
    (4, "superseded"),
    (5, "cessationOfOperation"),
    (6, "certificateHold"),
    (8, "removeFromCRL"),
    (9, "privilegeWithdrawn"),
    (10, "aACompromise"),
];

/// Whether `code` is an RFC 5280 CRLReason (0-10 but 7).
pub fn is_reason_code(code: u8) -> bool {
    REASONS.iter().any(|(c, _)| *c == code)
}

/// The RFC 5280 name of CRLReason `code` (`keyCompromise`), if it is one.
pub fn reason_name(code: u8) -> Option<&'static str> {
    REASONS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// The CRLReason code named `text`: an RFC 5280 name ([`REASONS`], case-insensitive) or its
/// number; `None` for anything else.
pub fn reason_code_named(text: &str) -> Option<u8> {
    let text = text.trim();
    match text.parse::<u8>() {
        Ok(code) => is_reason_code(code).then_some(code),
        Err(_) => REASONS
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(text))
            .map(|(code, _)| *code),
    }
}

/// rcgen's reason for an RFC 5280 CRLReason `code`; `None` for 0 (`unspecified`, which RFC 5280
/// says SHOULD NOT be written), an error for 7 and above 10.
fn reason_code(code: u8) -> Result<Option<RevocationReason>> {
    Ok(Some(match code {
        0 => return Ok(None),
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => {
            return Err(Error::InvalidParameter(format!(
                "revocation reason code {code} is not an RFC 5280 CRLReason"
            )))
        }
    }))
}

impl CertificateAuthority {
    /// A CRL listing `revoked`, valid from `now` for `next_update_secs`, with CRL number `number`.
    pub fn crl(
        &self,
        revoked: &[Revoked],
        now: OffsetDateTime,
        next_update_secs: u64,
        number: u64,
    ) -> Result<Vec<u8>> {
        self.crl_with(revoked, now, next_update_secs, number, self.held()?)
    }

    /// [`Self::crl`] without signing: the TBSCertList for a key store outside this code.
    pub fn crl_unsigned(
        &self,
        revoked: &[Revoked],
        now: OffsetDateTime,
        next_update_secs: u64,
        number: u64,
    ) -> Result<crate::ca::Tbs> {
        let capture = crate::ca::Capture::new(self.public_key());
        let dummy = self.crl_with(revoked, now, next_update_secs, number, &capture)?;
        capture.finish(&dummy)
    }

    fn crl_with(
        &self,
        revoked: &[Revoked],
        now: OffsetDateTime,
        next_update_secs: u64,
        number: u64,
        signer: &impl rcgen::SigningKey,
    ) -> Result<Vec<u8>> {
        if next_update_secs == 0 {
            return Err(Error::InvalidParameter(
                "the CRL's next update must be in the future".into(),
            ));
        }
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial),
                    revocation_time: OffsetDateTime::from_unix_timestamp(r.revoked_at)
                        .map_err(|e| Error::InvalidParameter(format!("revocation time: {e}")))?,
                    reason_code: match r.reason {
                        Some(code) => reason_code(code)?,
                        None => None,
                    },
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::seconds(next_update_secs as i64),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_identifier()),
        };
        let issuer = Issuer::from_params(self.params(), signer);
        Ok(params.signed_by(&issuer)?.der().to_vec())
    }
}

/// PEM text of a CRL.
pub fn crl_pem(der: &[u8]) -> String {
    pem::encode("X509 CRL", der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedRng;
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;

    fn ca(now: OffsetDateTime) -> CertificateAuthority {
        CertificateAuthority::new_root(
            &crate::CaParams::new("CRL CA"),
            now,
            &mut SeedRng::from_seed([7; 32]),
        )
        .unwrap()
    }

    fn entry(serial: u8, reason: Option<u8>) -> Revoked {
        Revoked {
            serial: vec![serial],
            revoked_at: 1_800_000_000,
            reason,
        }
    }

    #[test]
    fn crl_entries_carry_their_reason() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap();
        let der = ca(now)
            .crl(
                &[
                    entry(1, Some(1)),
                    entry(2, Some(4)),
                    entry(3, None),
                    entry(4, Some(0)),
                    entry(5, Some(10)),
                ],
                now,
                3600,
                1,
            )
            .unwrap();
        let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert!(rest.is_empty());
        let mut reasons = Vec::new();
        for r in crl.iter_revoked_certificates() {
            let reason = r.reason_code().map(|(critical, code)| {
                assert!(!critical, "reasonCode is a non-critical extension");
                code.0
            });
            reasons.push((r.raw_serial().to_vec(), reason));
        }
        assert_eq!(
            reasons,
            [
                (vec![1], Some(1)),
                (vec![2], Some(4)),
                (vec![3], None),
                // unspecified (0) is written as no reasonCode at all.
                (vec![4], None),
                (vec![5], Some(10)),
            ]
        );
    }

    #[test]
    fn reasons_by_name_or_number() {
        assert_eq!(reason_code_named("keyCompromise"), Some(1));
        assert_eq!(reason_code_named("KEYCOMPROMISE"), Some(1));
        assert_eq!(reason_code_named("cacompromise"), Some(2));
        assert_eq!(reason_code_named("removeFromCRL"), Some(8));
        assert_eq!(reason_code_named("aACompromise"), Some(10));
        assert_eq!(reason_code_named("4"), Some(4));
        assert_eq!(reason_code_named("0"), Some(0));
        for (code, name) in REASONS {
            assert_eq!(reason_code_named(name), Some(code));
            assert_eq!(reason_name(code), Some(name));
        }
        assert_eq!(reason_name(7), None);
        for bad in ["7", "11", "-1", "", "compromised", "key_compromise"] {
            assert_eq!(reason_code_named(bad), None, "{bad}");
        }
        assert!((0..=10)
            .filter(|c| is_reason_code(*c))
            .eq([0, 1, 2, 3, 4, 5, 6, 8, 9, 10]));
    }

    #[test]
    fn undefined_reason_codes_are_refused() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap();
        let ca = ca(now);
        for code in [7, 11, 255] {
            assert!(
                matches!(
                    ca.crl(&[entry(1, Some(code))], now, 3600, 1),
                    Err(Error::InvalidParameter(_))
                ),
                "{code}"
            );
        }
    }
}
