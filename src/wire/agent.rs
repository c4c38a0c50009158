//! The request bodies of the signer's node-agent API: a batch of CSRs, one per registration
//! entry (`POST /v1/agent/sign`), and a JWT-SVID ask for one entry (`POST /v1/agent/jwt`).
//! Decoded into typed asks with their limits checked (batch size, entry id and CSR lengths,
//! audiences); unknown fields refused. Which entries a node may name is the authority's call.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most CSRs in one batch (a batch fits the API's body limit; an agent sends several).
pub const MAX_BATCH: usize = 32;
/// Longest entry id, in bytes (the ledger makes 32-character ids).
pub const MAX_ENTRY_ID_BYTES: usize = 128;
/// Longest CSR in a batch, in bytes of PEM (a CSR's own parser limit).
pub const MAX_CSR_BYTES: usize = crate::pem::MAX_INPUT_BYTES;

/// One CSR of a batch, for one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryCsr {
    /// The entry it is for (one of the node's).
    pub entry_id: String,
    /// The CSR, PEM.
    pub csr: String,
}

/// `POST /v1/agent/sign`: 1 to [`MAX_BATCH`] CSRs, each for its own entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignBatch {
    /// The CSRs, answered in this order.
    pub csrs: Vec<EntryCsr>,
}

/// `POST /v1/agent/jwt`: a JWT-SVID for one entry and audience set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtAsk {
    /// The entry whose SPIFFE ID becomes `sub`.
    pub entry_id: String,
    /// The audiences (`aud`): 1 to [`crate::wire::jwt_svid::MAX_AUDIENCES`].
    pub audience: Vec<String>,
}

fn check_entry_id(id: &str) -> core::result::Result<(), String> {
    if id.is_empty() || id.len() > MAX_ENTRY_ID_BYTES || id.chars().any(char::is_control) {
        return Err(format!(
            "an entry id has 1 to {MAX_ENTRY_ID_BYTES} printable characters"
        ));
    }
    Ok(())
}

impl SignBatch {
    /// Decode a body; refused: not this shape, an empty or oversized batch, an entry named
    /// twice, an id or CSR out of bounds.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let batch: SignBatch = serde_json::from_slice(body)
            .map_err(|e| Error::InvalidParameter(format!("the batch: {e}")))?;
        if batch.csrs.is_empty() || batch.csrs.len() > MAX_BATCH {
            return Err(Error::InvalidParameter(format!(
                "a batch holds 1 to {MAX_BATCH} CSRs (got {})",
                batch.csrs.len()
            )));
        }
        for (i, c) in batch.csrs.iter().enumerate() {
            check_entry_id(&c.entry_id).map_err(Error::InvalidParameter)?;
            if c.csr.is_empty() || c.csr.len() > MAX_CSR_BYTES {
                return Err(Error::InvalidParameter(format!(
                    "CSR {i}: 1 to {MAX_CSR_BYTES} bytes of PEM"
                )));
            }
            if batch.csrs[..i].iter().any(|o| o.entry_id == c.entry_id) {
                return Err(Error::InvalidParameter(format!(
                    "entry {:?} is named twice in one batch",
                    c.entry_id
                )));
            }
        }
        Ok(batch)
    }
}

impl JwtAsk {
    /// Decode a body; refused: not this shape, an id out of bounds, no audience, too many or
    /// too long ones.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let ask: JwtAsk = serde_json::from_slice(body)
            .map_err(|e| Error::InvalidParameter(format!("the JWT-SVID ask: {e}")))?;
        check_entry_id(&ask.entry_id).map_err(Error::InvalidParameter)?;
        crate::wire::jwt_svid::check_audience(&ask.audience).map_err(Error::InvalidParameter)?;
        Ok(ask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<impl core::fmt::Debug>) -> String {
        match r {
            Err(Error::InvalidParameter(m)) => m,
            other => panic!("not refused as a parameter: {other:?}"),
        }
    }

    #[test]
    fn batches() {
        let ok = br#"{"csrs":[{"entryId":"e1","csr":"-----BEGIN"},{"entryId":"e2","csr":"x"}]}"#;
        let b = SignBatch::decode(ok).unwrap();
        assert_eq!(b.csrs.len(), 2);
        assert_eq!(
            SignBatch::decode(&serde_json::to_vec(&b).unwrap()).unwrap(),
            b
        );
        for (body, want) in [
            (&br#"{"csrs":[]}"#[..], "1 to 32"),
            (
                br#"{"csrs":[{"entryId":"e1","csr":"x"}],"node":"n2"}"#,
                "unknown field",
            ),
            (
                br#"{"csrs":[{"entryId":"e1","csr":"x","names":[]}]}"#,
                "unknown field",
            ),
            (br#"{"csrs":[{"entryId":"","csr":"x"}]}"#, "entry id"),
            (br#"{"csrs":[{"entryId":"e\u0000","csr":"x"}]}"#, "entry id"),
            (br#"{"csrs":[{"entryId":"e1","csr":""}]}"#, "bytes of PEM"),
            (
                br#"{"csrs":[{"entryId":"e1","csr":"x"},{"entryId":"e1","csr":"y"}]}"#,
                "twice",
            ),
            (br#"{"csrs":{"entryId":"e1"}}"#, "invalid type"),
            (b"[", "EOF"),
            (b"", "EOF"),
        ] {
            let m = refused(SignBatch::decode(body));
            assert!(m.contains(want), "{}: {m}", String::from_utf8_lossy(body));
        }
        let many = SignBatch {
            csrs: (0..=MAX_BATCH)
                .map(|i| EntryCsr {
                    entry_id: format!("e{i}"),
                    csr: "x".into(),
                })
                .collect(),
        };
        assert!(refused(SignBatch::decode(&serde_json::to_vec(&many).unwrap())).contains("got 33"));
        let long = SignBatch {
            csrs: vec![EntryCsr {
                entry_id: "e".into(),
                csr: "x".repeat(MAX_CSR_BYTES + 1),
            }],
        };
        refused(SignBatch::decode(&serde_json::to_vec(&long).unwrap()));
    }

    #[test]
    fn jwt_asks() {
        let a = JwtAsk::decode(br#"{"entryId":"e1","audience":["db","cache"]}"#).unwrap();
        assert_eq!(a.audience, ["db", "cache"]);
        for (body, want) in [
            (&br#"{"entryId":"e1","audience":[]}"#[..], "at least one"),
            (br#"{"entryId":"e1"}"#, "missing field"),
            (br#"{"entryId":"e1","audience":[""]}"#, "1 to 512"),
            (
                br#"{"entryId":"e1","audience":["a"],"sub":"spiffe://x/y"}"#,
                "unknown field",
            ),
            (br#"{"entryId":"","audience":["a"]}"#, "entry id"),
            (br#"{"entryId":"e1","audience":"db"}"#, "invalid type"),
        ] {
            let m = refused(JwtAsk::decode(body));
            assert!(m.contains(want), "{}: {m}", String::from_utf8_lossy(body));
        }
        let many = JwtAsk {
            entry_id: "e".into(),
            audience: vec!["a".into(); 33],
        };
        assert!(refused(JwtAsk::decode(&serde_json::to_vec(&many).unwrap())).contains("33"));
    }
}
