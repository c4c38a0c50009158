//! The request bodies of the Vault-compatible PKI API (`sign/<role>`, `root/sign-intermediate`),
//! decoded into what they ask beyond the CSR. Vault's loose JSON types are accepted (strings for
//! booleans and numbers, comma-separated strings or arrays for lists, durations as seconds or
//! `72h`); unknown fields, repeated fields and options that would widen what the profile decides
//! are refused. The host's API layer serves the paths; this is only the decoder.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::name::SanName;

/// What a Vault signing request asks: the CSR, a lifetime and names beyond it, the chain form,
/// and warnings for the fields that were read but have no effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultRequest {
    /// The CSR, as sent (PEM).
    pub csr: String,
    /// `ttl`, seconds; `None`: the profile's default.
    pub lifetime_secs: Option<u64>,
    /// `common_name` (unless `exclude_cn_from_sans`), `alt_names`, `ip_sans`, `uri_sans`.
    pub extra_names: Vec<SanName>,
    /// `remove_roots_from_chain`.
    pub remove_roots: bool,
    /// Fields that were ignored, for the answer's `warnings`.
    pub warnings: Vec<String>,
}

/// Which endpoint a body was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `sign/<role>`: a leaf (cert-manager's Vault issuer).
    Sign,
    /// `root/sign-intermediate`: an intermediate CA (SPIRE's `vault` UpstreamAuthority), whose
    /// path length the profile fixes.
    SignIntermediate {
        /// The profile's path length: `max_path_length` may only repeat it.
        path_len: u8,
    },
}

/// Decode a body sent to `endpoint`.
pub fn decode(body: &[u8], endpoint: Endpoint) -> Result<VaultRequest> {
    let (fields, path_len) = match endpoint {
        Endpoint::Sign => (SIGN_FIELDS, None),
        Endpoint::SignIntermediate { path_len } => (INTERMEDIATE_FIELDS, Some(path_len)),
    };
    decode_fields(body, fields, path_len).map_err(Error::InvalidParameter)
}

/// The kinds of request field this API knows, and what it does with each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Csr,
    /// `common_name`: a name asked for (unless `exclude_cn_from_sans`).
    CommonName,
    /// Comma-separated DNS names or e-mail addresses.
    AltNames,
    IpSans,
    UriSans,
    Ttl,
    Bool,
    /// Subject attributes of `sign-intermediate`: the profile decides the subject, so they are
    /// ignored (with a warning in the answer).
    SubjectHint,
    /// `format`: only PEM is produced.
    Format,
    /// Options that would widen what the profile decides: refused unless empty.
    Unsupported,
    /// `max_path_length`: only the profile's value.
    MaxPathLength,
}

const SIGN_FIELDS: &[(&str, Field)] = &[
    ("csr", Field::Csr),
    ("common_name", Field::CommonName),
    ("alt_names", Field::AltNames),
    ("ip_sans", Field::IpSans),
    ("uri_sans", Field::UriSans),
    ("ttl", Field::Ttl),
    ("exclude_cn_from_sans", Field::Bool),
    ("remove_roots_from_chain", Field::Bool),
    ("format", Field::Format),
    ("private_key_format", Field::Format),
    ("other_sans", Field::Unsupported),
    ("serial_number", Field::Unsupported),
    ("not_after", Field::Unsupported),
    ("user_ids", Field::Unsupported),
    ("issuer_ref", Field::Unsupported),
];

const INTERMEDIATE_FIELDS: &[(&str, Field)] = &[
    ("csr", Field::Csr),
    ("common_name", Field::SubjectHint),
    ("organization", Field::SubjectHint),
    ("ou", Field::SubjectHint),
    ("country", Field::SubjectHint),
    ("locality", Field::SubjectHint),
    ("province", Field::SubjectHint),
    ("street_address", Field::SubjectHint),
    ("postal_code", Field::SubjectHint),
    ("use_csr_values", Field::Bool),
    ("exclude_cn_from_sans", Field::Bool),
    ("alt_names", Field::AltNames),
    ("ip_sans", Field::IpSans),
    ("uri_sans", Field::UriSans),
    ("ttl", Field::Ttl),
    ("format", Field::Format),
    ("private_key_format", Field::Format),
    ("max_path_length", Field::MaxPathLength),
    ("other_sans", Field::Unsupported),
    ("permitted_dns_domains", Field::Unsupported),
    ("serial_number", Field::Unsupported),
    ("not_after", Field::Unsupported),
    ("signature_bits", Field::Unsupported),
    ("use_pss", Field::Unsupported),
    ("skid", Field::Unsupported),
    ("issuer_ref", Field::Unsupported),
];

/// Decode a Vault write's body (a JSON object; Vault's loose types: strings for booleans and
/// numbers, comma-separated strings or arrays for lists) against `fields`; unknown fields,
/// wrong types and widening options are refused.
fn decode_fields(
    body: &[u8],
    fields: &[(&str, Field)],
    path_len: Option<u8>,
) -> core::result::Result<VaultRequest, String> {
    let StrictObject(map) =
        serde_json::from_slice(body).map_err(|e| format!("the body must be a JSON object: {e}"))?;
    let kind = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, f)| *f);
    if let Some(k) = map.keys().find(|k| kind(k).is_none()) {
        return Err(format!("unknown field \"{}\"", k.escape_debug()));
    }
    let mut d = VaultRequest::default();
    let mut common_name = None;
    let mut exclude_cn = false;
    let mut ignored = Vec::new();
    for (k, v) in &map {
        match kind(k).unwrap_or(Field::Unsupported) {
            Field::Csr => d.csr = string(k, v)?,
            Field::CommonName => {
                common_name = Some(string(k, v)?).filter(|s| !s.is_empty());
            }
            Field::AltNames => {
                for n in list(k, v)? {
                    let name = if n.contains('@') {
                        SanName::email(&n)
                    } else {
                        SanName::dns(&n)
                    };
                    d.extra_names.push(name.map_err(|e| format!("{k}: {e}"))?);
                }
            }
            Field::IpSans => {
                for n in list(k, v)? {
                    let ip = n.parse().map_err(|_| {
                        format!("{k}: \"{}\" is not an IP address", n.escape_debug())
                    })?;
                    d.extra_names.push(SanName::Ip(ip));
                }
            }
            Field::UriSans => {
                for n in list(k, v)? {
                    d.extra_names
                        .push(SanName::uri(&n).map_err(|e| format!("{k}: {e}"))?);
                }
            }
            Field::Ttl => d.lifetime_secs = ttl(k, v)?,
            Field::Bool => {
                let b = boolean(k, v)?;
                match k.as_str() {
                    "exclude_cn_from_sans" => exclude_cn = b,
                    "remove_roots_from_chain" => d.remove_roots = b,
                    _ if b => ignored.push(k.clone()),
                    _ => {}
                }
            }
            Field::SubjectHint => {
                if !list(k, v)?.is_empty() {
                    ignored.push(k.clone());
                }
            }
            Field::Format => {
                let f = string(k, v)?;
                if !matches!(f.as_str(), "" | "pem" | "der" | "pkcs8")
                    || (k == "format" && f == "der")
                {
                    return Err(format!(
                        "{k} \"{}\": this CA answers in PEM only",
                        f.escape_debug()
                    ));
                }
            }
            Field::MaxPathLength => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| format!("{k}: expected an integer"))?;
                let allowed = i64::from(path_len.unwrap_or(0));
                if n != allowed {
                    return Err(format!(
                        "max_path_length {n}: intermediates of this CA get path length {allowed}, set by its profile"
                    ));
                }
            }
            Field::Unsupported => {
                let empty = match v {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_i64() == Some(0),
                    Value::Object(o) => o.is_empty(),
                };
                if !empty {
                    return Err(format!(
                        "{k} is not supported: the profile decides what the certificate holds"
                    ));
                }
            }
        }
    }
    if d.csr.trim().is_empty() {
        return Err("missing csr".into());
    }
    if let Some(cn) = common_name {
        if !exclude_cn {
            let name = if cn.contains('@') {
                SanName::email(&cn)
            } else {
                SanName::dns(&cn)
            };
            d.extra_names
                .insert(0, name.map_err(|e| format!("common_name: {e}"))?);
        }
    }
    if !ignored.is_empty() {
        ignored.sort();
        d.warnings.push(format!(
            "ignored {}: this CA's profile decides the subject",
            ignored.join(", ")
        ));
    }
    Ok(d)
}

/// A JSON object whose keys are all different: a repeated key is refused, not "last one wins"
/// (two parsers must never read two different requests out of one body).
struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> core::result::Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "the field \"{}\" appears twice",
                            k.escape_debug()
                        )));
                    }
                    map.insert(k, v);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(Visitor)
    }
}

fn string(k: &str, v: &Value) -> core::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(format!("{k}: expected a string")),
    }
}

/// A Vault comma-string slice: `"a,b"` or `["a", "b"]`; empty items dropped.
fn list(k: &str, v: &Value) -> core::result::Result<Vec<String>, String> {
    let items: Vec<String> = match v {
        Value::Null => Vec::new(),
        Value::String(s) => s.split(',').map(String::from).collect(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{k}: expected strings"))?,
        _ => return Err(format!("{k}: expected a string or a list of strings")),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

fn boolean(k: &str, v: &Value) -> core::result::Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" | "" => Ok(false),
            _ => Err(format!("{k}: expected true or false")),
        },
        _ => Err(format!("{k}: expected a boolean")),
    }
}

/// A Vault duration: seconds (a number or a string of digits) or a Go-style duration string
/// (`2160h0m0s`, `72h`, `30m`); absent or empty: the profile's default.
fn ttl(k: &str, v: &Value) -> core::result::Result<Option<u64>, String> {
    let bad = |why: &str| format!("{k}: {why}");
    let secs = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64().ok_or_else(|| bad("expected whole seconds"))?,
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            s.trim().parse().map_err(|_| bad("too many seconds"))?
        }
        Value::String(s) => humantime::parse_duration(s.trim())
            .map_err(|e| bad(&format!("\"{}\": {e}", s.escape_debug())))?
            .as_secs(),
        _ => return Err(bad("expected seconds or a duration such as \"72h\"")),
    };
    if secs == 0 {
        return Ok(None);
    }
    Ok(Some(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_in_both_vault_forms() {
        for (v, want) in [
            (json!(3600), Some(3600)),
            (json!("3600"), Some(3600)),
            (json!("2160h0m0s"), Some(2160 * 3600)),
            (json!("72h"), Some(72 * 3600)),
            (json!("1h30m"), Some(5400)),
            (json!(""), None),
            (json!(null), None),
        ] {
            assert_eq!(ttl("ttl", &v).unwrap(), want, "{v}");
        }
        for bad in [
            json!(-5),
            json!(1.5),
            json!("soon"),
            json!("99999999999999999999999"),
            json!(true),
            json!([]),
        ] {
            assert!(ttl("ttl", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_are_read_strictly() {
        let ok = decode_fields(
            br#"{"csr":"x","common_name":"a.example.com","alt_names":"b.example.com, c@example.com","ip_sans":["10.0.0.1"],"uri_sans":"","exclude_cn_from_sans":"false","ttl":"1h","format":"pem"}"#,
            SIGN_FIELDS,
            None,
        )
        .unwrap();
        assert_eq!(ok.lifetime_secs, Some(3600));
        assert_eq!(ok.extra_names.len(), 4);
        let excluded = decode_fields(
            br#"{"csr":"x","common_name":"a.example.com","exclude_cn_from_sans":true}"#,
            SIGN_FIELDS,
            None,
        )
        .unwrap();
        assert!(excluded.extra_names.is_empty());
        for bad in [
            &br#"{"csr":"x","role_name":"admin"}"#[..],
            br#"{"csr":"x","other_sans":"1.2.3;UTF8:x"}"#,
            br#"{"csr":"x","not_after":"9999-12-31T23:59:59Z"}"#,
            br#"{"csr":"x","format":"der"}"#,
            br#"{"csr":"x","ip_sans":"not-an-ip"}"#,
            br#"{"csr":"x","alt_names":"bad name"}"#,
            br#"{"csr":"x","exclude_cn_from_sans":"maybe"}"#,
            br#"{"common_name":"a.example.com"}"#,
            br#"["csr"]"#,
            br#"{"csr":1}"#,
            br#"{"csr":"x","csr":"y"}"#,
        ] {
            assert!(
                decode_fields(bad, SIGN_FIELDS, None).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(decode_fields(
            br#"{"csr":"x","max_path_length":0}"#,
            INTERMEDIATE_FIELDS,
            Some(0)
        )
        .is_ok());
        for bad in [
            &br#"{"csr":"x","max_path_length":-1}"#[..],
            br#"{"csr":"x","max_path_length":1}"#,
            br#"{"csr":"x","permitted_dns_domains":["example.com"]}"#,
        ] {
            assert!(
                decode_fields(bad, INTERMEDIATE_FIELDS, Some(0)).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let hinted = decode_fields(
            br#"{"csr":"x","common_name":"SPIRE","organization":"SPIFFE","country":"US"}"#,
            INTERMEDIATE_FIELDS,
            Some(0),
        )
        .unwrap();
        assert_eq!(hinted.warnings.len(), 1);
    }

    #[test]
    fn a_deep_json_bomb_is_an_error() {
        let bomb = format!(
            "{{\"csr\":{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(decode_fields(bomb.as_bytes(), SIGN_FIELDS, None).is_err());
    }
}
