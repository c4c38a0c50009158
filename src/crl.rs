//! Certificate revocation lists signed by a CA.

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams, SerialNumber,
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
                    reason_code: None,
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
        let issuer = Issuer::from_params(self.params(), self.key());
        Ok(params.signed_by(&issuer)?.der().to_vec())
    }
}

/// PEM text of a CRL.
pub fn crl_pem(der: &[u8]) -> String {
    pem::encode("X509 CRL", der)
}
