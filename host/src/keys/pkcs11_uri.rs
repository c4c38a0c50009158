//! RFC 7512 PKCS#11 URIs naming a CA key: the module to load, the token, the private key object
//! and where the PIN comes from. Strict: an attribute wasm-pki would not use, a repeated one, a
//! character the grammar does not allow or a PIN on the command line without saying so is an
//! error, never ignored (a typo must not select another key).

use std::fmt;
use std::path::PathBuf;

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

/// The longest URI accepted (a real one is a few hundred bytes).
pub const MAX_URI_LEN: usize = 4096;

/// Where the token's user PIN comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PinSource {
    /// No PIN: the token needs no login (or the module logs in by itself).
    None,
    /// The first line of a file (`pin-source=file:/run/secrets/pin`), read when the key is opened.
    File(PathBuf),
    /// In the URI itself (`pin-value=`): for tests; never printed.
    Value(Zeroizing<String>),
}

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSource::None => f.write_str("None"),
            PinSource::File(p) => f.debug_tuple("File").field(p).finish(),
            PinSource::Value(_) => f.write_str("Value(..)"),
        }
    }
}

/// A parsed `pkcs11:` URI that names one private key in one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `module-path`: the PKCS#11 module (an absolute path), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module_path: PathBuf,
    /// `token`: the token's label (CK_TOKEN_INFO.label, compared without its blank padding).
    pub token: Option<String>,
    /// `serial`: the token's serial number.
    pub serial: Option<String>,
    /// `slot-id`: the slot's number.
    pub slot_id: Option<u64>,
    /// `object`: the key's label (CKA_LABEL).
    pub object: Option<String>,
    /// `id`: the key's CKA_ID, as bytes (`id=%01%02`).
    pub id: Option<Vec<u8>>,
    /// `pin-source` or `pin-value`.
    pub pin: PinSource,
}

/// Why a URI was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriError(pub String);

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PKCS#11 URI: {}", self.0)
    }
}

impl std::error::Error for UriError {}

fn err<T>(m: impl Into<String>) -> Result<T, UriError> {
    Err(UriError(m.into()))
}

/// RFC 7512's pk11-res-avail, and what each part adds to it.
const RES_AVAIL: &[u8] = b":[]@!$'()*+,=";
const PATH_EXTRA: &[u8] = b"&";
const QUERY_EXTRA: &[u8] = b"/?|";

fn allowed(b: u8, extra: &[u8]) -> bool {
    b.is_ascii_alphanumeric()
        || b"-._~".contains(&b)
        || RES_AVAIL.contains(&b)
        || extra.contains(&b)
}

/// Check a raw value against the grammar of its part (`extra` chars) and percent-decode it.
fn decode(name: &str, raw: &str, extra: &[u8]) -> Result<Vec<u8>, UriError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
                if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                    return err(format!("{name}: a % must be followed by two hex digits"));
                }
                i += 3;
            }
            b if allowed(b, extra) => i += 1,
            b => {
                return err(format!(
                    "{name}: the character {:?} must be percent-encoded",
                    char::from(b)
                ))
            }
        }
    }
    Ok(percent_decode_str(raw).collect())
}

fn text(name: &str, bytes: Vec<u8>) -> Result<String, UriError> {
    let s = String::from_utf8(bytes).map_err(|_| UriError(format!("{name}: not UTF-8")))?;
    if s.chars().any(char::is_control) {
        return err(format!("{name}: control characters"));
    }
    Ok(s)
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(uri: &str) -> Result<Self, UriError> {
        if uri.len() > MAX_URI_LEN {
            return err(format!("longer than {MAX_URI_LEN} bytes"));
        }
        let rest = match uri.get(..7) {
            Some(s) if s.eq_ignore_ascii_case("pkcs11:") => &uri[7..],
            _ => return err("it must start with pkcs11:"),
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Pkcs11Uri {
            module_path: PathBuf::new(),
            token: None,
            serial: None,
            slot_id: None,
            object: None,
            id: None,
            pin: PinSource::None,
        };
        let mut seen: Vec<String> = Vec::new();
        let mut module_path = None;
        let mut pin_source = None;
        let mut pin_value = None;
        let parts = path
            .split(';')
            .map(|a| (a, PATH_EXTRA, true))
            .filter(|_| !path.is_empty())
            .chain(
                query
                    .split('&')
                    .map(|a| (a, QUERY_EXTRA, false))
                    .filter(|_| !query.is_empty()),
            );
        for (attr, extra, in_path) in parts {
            let Some((name, raw)) = attr.split_once('=') else {
                return err(format!("{:?} is not name=value", clip(attr)));
            };
            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return err(format!("{name} is given twice"));
            }
            seen.push(name.clone());
            // step-ca writes module-path in the path with its slashes as they are.
            let extra = if name == "module-path" {
                b"&/".as_slice()
            } else {
                extra
            };
            let value = decode(&name, raw, extra)?;
            match (name.as_str(), in_path) {
                ("token", true) => u.token = Some(text(&name, value)?),
                ("serial", true) => u.serial = Some(text(&name, value)?),
                ("object", true) => u.object = Some(text(&name, value)?),
                ("id", true) => u.id = Some(value),
                ("slot-id", true) => {
                    let t = text(&name, value)?;
                    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                        return err("slot-id: a decimal number");
                    }
                    u.slot_id = Some(
                        t.parse()
                            .map_err(|_| UriError("slot-id: too large".into()))?,
                    );
                }
                ("type", true) => {
                    if text(&name, value)? != "private" {
                        return err("type: a CA key is a private key (type=private)");
                    }
                }
                // RFC 7512 puts module-path in the query; step-ca also reads it in the path.
                ("module-path", _) => module_path = Some(text(&name, value)?),
                ("pin-source", false) => pin_source = Some(text(&name, value)?),
                ("pin-value", false) => pin_value = Some(Zeroizing::new(text(&name, value)?)),
                ("token" | "serial" | "object" | "id" | "slot-id" | "type", false)
                | ("pin-source" | "pin-value", true) => {
                    return err(format!(
                        "{name} belongs in the URI's {} (before or after the ?)",
                        if in_path { "query" } else { "path" }
                    ))
                }
                _ => {
                    return err(format!(
                        "{:?} is not used by wasm-pki (token, serial, slot-id, object, id, type; \
                         module-path, pin-source, pin-value)",
                        clip(&name)
                    ))
                }
            }
        }
        let Some(module) = module_path else {
            return err("module-path is required (the PKCS#11 module, e.g. module-path=/usr/lib/softhsm/libsofthsm2.so)");
        };
        u.module_path = PathBuf::from(module);
        if !u.module_path.is_absolute() {
            return err("module-path must be an absolute path");
        }
        if u.token.is_none() && u.serial.is_none() && u.slot_id.is_none() {
            return err("name the token: token=LABEL, serial= or slot-id=");
        }
        if u.object.is_none() && u.id.is_none() {
            return err("name the key: object=LABEL or id=%HH…");
        }
        if u.object.as_deref() == Some("")
            || u.token.as_deref() == Some("")
            || u.id.as_ref().is_some_and(Vec::is_empty)
        {
            return err("an empty token, object or id names nothing");
        }
        u.pin = match (pin_source, pin_value) {
            (Some(_), Some(_)) => return err("pin-source and pin-value together"),
            (Some(s), None) => PinSource::File(pin_file(&s)?),
            (None, Some(v)) => PinSource::Value(v),
            (None, None) => PinSource::None,
        };
        Ok(u)
    }
}

/// `pin-source`: a `file:` URI or an absolute path; running a program (`|cmd`) is refused.
fn pin_file(source: &str) -> Result<PathBuf, UriError> {
    let path = source
        .strip_prefix("file://")
        .or_else(|| source.strip_prefix("file:"))
        .unwrap_or(source);
    if source.starts_with('|') {
        return err("pin-source: running a program is not supported; give a file");
    }
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return err("pin-source: an absolute path or file: URI");
    }
    Ok(path)
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// What a printed value escapes: everything but the unreserved characters.
const PRINTED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// A path in the query keeps its slashes.
const QUERY_PRINTED: &AsciiSet = &PRINTED.remove(b'/');

impl fmt::Display for Pkcs11Uri {
    /// The URI in RFC 7512's form, with a `pin-value` shown as `***` (safe for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &[u8]| percent_encode(s, PRINTED).to_string();
        let path_enc = |s: &[u8]| percent_encode(s, QUERY_PRINTED).to_string();
        let mut path = Vec::new();
        if let Some(t) = &self.token {
            path.push(format!("token={}", enc(t.as_bytes())));
        }
        if let Some(s) = &self.serial {
            path.push(format!("serial={}", enc(s.as_bytes())));
        }
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        if let Some(o) = &self.object {
            path.push(format!("object={}", enc(o.as_bytes())));
        }
        if let Some(id) = &self.id {
            path.push(format!("id={}", enc(id)));
        }
        path.push("type=private".into());
        let mut query = vec![format!(
            "module-path={}",
            path_enc(self.module_path.as_os_str().as_encoded_bytes())
        )];
        match &self.pin {
            PinSource::None => {}
            PinSource::File(p) => query.push(format!(
                "pin-source=file:{}",
                path_enc(p.as_os_str().as_encoded_bytes())
            )),
            PinSource::Value(_) => query.push("pin-value=***".into()),
        }
        write!(f, "pkcs11:{}?{}", path.join(";"), query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOFTHSM: &str = "module-path=/usr/lib/softhsm/libsofthsm2.so";

    fn parse(s: &str) -> Result<Pkcs11Uri, UriError> {
        s.parse()
    }

    #[test]
    fn the_usual_forms_parse() {
        let u = parse(&format!(
            "pkcs11:token=wasm-pki;object=ca-key;id=%01%a0;type=private?{SOFTHSM}&pin-source=file:/run/secrets/pin"
        ))
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("wasm-pki"));
        assert_eq!(u.object.as_deref(), Some("ca-key"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xa0][..]));
        assert_eq!(
            u.module_path,
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert_eq!(u.pin, PinSource::File("/run/secrets/pin".into()));
        // step-ca's form: module-path in the path, the PIN inline, a percent-encoded label.
        let u = parse("PKCS11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=My%20CA;slot-id=7;object=root%3Bkey?pin-value=12%2634").unwrap();
        assert_eq!(u.token.as_deref(), Some("My CA"));
        assert_eq!(u.object.as_deref(), Some("root;key"));
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.pin, PinSource::Value(Zeroizing::new("12&34".into())));
        // A serial number and an id alone; pin-source as a plain path and as file:///.
        let u = parse(&format!(
            "pkcs11:serial=0123abc;id=%69%95%3E?{SOFTHSM}&pin-source=/etc/pin"
        ))
        .unwrap();
        assert_eq!(
            (u.serial.as_deref(), u.id.as_deref()),
            (Some("0123abc"), Some(&b"\x69\x95\x3e"[..]))
        );
        assert_eq!(u.pin, PinSource::File("/etc/pin".into()));
        let u = parse(&format!(
            "pkcs11:token=t;object=k?{SOFTHSM}&pin-source=file:///etc/pin"
        ))
        .unwrap();
        assert_eq!(u.pin, PinSource::File("/etc/pin".into()));
    }

    #[test]
    fn printing_round_trips_and_never_shows_the_pin() {
        for s in [
            format!("pkcs11:token=A%20b%2Fc;object=k%C3%A9y;id=%00%FF;type=private?{SOFTHSM}&pin-source=file:/p/a%20b"),
            format!("pkcs11:serial=S;slot-id=3;object=k?{SOFTHSM}"),
        ] {
            let u = parse(&s).unwrap();
            assert_eq!(parse(&u.to_string()).unwrap(), u, "{s} -> {u}");
        }
        let u = parse(&format!(
            "pkcs11:token=t;object=k?{SOFTHSM}&pin-value=secret1234"
        ))
        .unwrap();
        assert!(u.to_string().ends_with("&pin-value=***"), "{u}");
        assert!(!format!("{u} {u:?}").contains("secret1234"));
    }

    #[test]
    fn hostile_and_wrong_uris_are_refused_with_a_reason() {
        let long = format!(
            "pkcs11:token={};object=k?{SOFTHSM}",
            "a".repeat(MAX_URI_LEN)
        );
        for (uri, why) in [
            ("", "start with pkcs11:"),
            ("pkcs11", "start with pkcs11:"),
            (
                "pkcs12:token=t;object=k?module-path=/m.so",
                "start with pkcs11:",
            ),
            ("pkcs11:token=t;object=k", "module-path is required"),
            ("pkcs11:object=k?module-path=/m.so", "name the token"),
            ("pkcs11:token=t?module-path=/m.so", "name the key"),
            ("pkcs11:token=t;object=k?module-path=lib/m.so", "absolute"),
            ("pkcs11:token=t;token=u;object=k?module-path=/m.so", "twice"),
            ("pkcs11:token=t;TOKEN=u;object=k?module-path=/m.so", "twice"),
            (
                "pkcs11:token=t;objetc=k?module-path=/m.so",
                "not used by wasm-pki",
            ),
            (
                "pkcs11:token=t;manufacturer=x;object=k?module-path=/m.so",
                "not used by wasm-pki",
            ),
            (
                "pkcs11:token=t;object=k;type=cert?module-path=/m.so",
                "type=private",
            ),
            (
                "pkcs11:token=t;object=k;slot-id=-1?module-path=/m.so",
                "decimal",
            ),
            (
                "pkcs11:token=t;object=k;slot-id=99999999999999999999999?module-path=/m.so",
                "too large",
            ),
            (
                "pkcs11:token=t;object=k%zz?module-path=/m.so",
                "two hex digits",
            ),
            (
                "pkcs11:token=t;object=k%4?module-path=/m.so",
                "two hex digits",
            ),
            (
                "pkcs11:token=t;object=a/b?module-path=/m.so",
                "percent-encoded",
            ),
            (
                "pkcs11:token=t;object=a b?module-path=/m.so",
                "percent-encoded",
            ),
            (
                "pkcs11:token=t;object=k?module-path=/m.so&pin-value=1&pin-source=/p",
                "together",
            ),
            (
                "pkcs11:token=t;object=k?module-path=/m.so&pin-source=|/bin/pin",
                "running a program",
            ),
            (
                "pkcs11:token=t;object=k?module-path=/m.so&pin-source=pin.txt",
                "absolute path",
            ),
            (
                "pkcs11:token=t;object=k;pin-value=1?module-path=/m.so",
                "query",
            ),
            ("pkcs11:token=t?object=k&module-path=/m.so", "path"),
            ("pkcs11:token=t;object=%FF?module-path=/m.so", "UTF-8"),
            ("pkcs11:token=t;object=a%0Ab?module-path=/m.so", "control"),
            ("pkcs11:token=;object=k?module-path=/m.so", "names nothing"),
            ("pkcs11:token=t;id=?module-path=/m.so", "names nothing"),
            ("pkcs11:token=t;;object=k?module-path=/m.so", "name=value"),
            ("pkcs11:token=t;object=k?module-path=/m.so&", "name=value"),
            (long.as_str(), "longer than"),
        ] {
            let e = parse(uri).expect_err(uri);
            assert!(e.0.contains(why), "{uri}: {e}");
        }
    }
}
