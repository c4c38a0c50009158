//! The npm package's declarations (`pkg/index.d.ts`) checked against the Rust they describe: the
//! error codes are exactly `Error::CODES`, and every profile field they name is one the core reads
//! (so a TypeScript user never writes a field the core refuses as unknown).

use wasm_pki::{Error, Profile};

fn declarations() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/pkg/index.d.ts");
    std::fs::read_to_string(path).unwrap()
}

/// The text between `start` and the first `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in index.d.ts"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}

fn quoted(text: &str) -> Vec<String> {
    text.split('\'')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn error_codes_are_the_cores() {
    let d = declarations();
    let mut declared = quoted(between(&d, "export type ErrorCode =", ";"));
    declared.sort();
    let mut codes: Vec<String> = Error::CODES.iter().map(|c| c.to_string()).collect();
    codes.sort();
    assert_eq!(declared, codes);
}

/// Field names declared in a `{ a?: …; b: … }` body, one level deep.
fn fields(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut word = String::new();
    for c in body.chars() {
        match c {
            '{' | '(' | '[' => {
                depth += 1;
                word.clear()
            }
            '}' | ')' | ']' => {
                depth -= 1;
                word.clear()
            }
            '?' | ':' if depth == 0 && !word.is_empty() => {
                out.push(std::mem::take(&mut word));
            }
            c if c.is_ascii_alphanumeric() && depth == 0 => word.push(c),
            _ => word.clear(),
        }
    }
    out.dedup();
    out
}

fn accepted(json: &str) -> Result<(), String> {
    match serde_json::from_str::<Profile>(json) {
        Err(e) if e.to_string().contains("unknown field") => Err(e.to_string()),
        _ => Ok(()),
    }
}

#[test]
fn every_declared_profile_field_is_read_by_the_core() {
    let d = declarations();
    let body: String = between(&d, "export interface Profile {", "\n}")
        .lines()
        .filter(|l| !l.trim_start().starts_with("/*") && !l.trim_start().starts_with('*'))
        .collect::<Vec<_>>()
        .join("\n");
    let top = fields(&body);
    assert!(top.len() >= 10, "{top:?}");
    for f in &top {
        accepted(&format!(r#"{{"{f}": null}}"#)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // A field the core does not read is caught by this check.
    assert!(accepted(r#"{"identity": null}"#).is_err());
    let names = between(&body, "names?: {", "};");
    for f in fields(names) {
        accepted(&format!(r#"{{"names": {{"{f}": null}}}}"#))
            .unwrap_or_else(|e| panic!("names.{f}: {e}"));
    }
    let spiffe = between(&body, "spiffe?: {", "};");
    for f in fields(spiffe) {
        accepted(&format!(r#"{{"spiffe": {{"{f}": null}}}}"#))
            .unwrap_or_else(|e| panic!("spiffe.{f}: {e}"));
    }
}
