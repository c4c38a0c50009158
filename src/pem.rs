//! PEM reading and writing shared by keys, CSRs and certificates.

use crate::error::{Error, Result};

/// Largest PEM or DER input the core reads (a CSR, a certificate, a key, a chain of a few certs).
/// Anything bigger is refused by size before parsing, so hostile inputs cannot cost much.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// One decoded PEM block.
#[derive(Debug)]
pub(crate) struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// True when the input starts (after white space) like PEM text rather than DER.
pub(crate) fn is_pem(input: &[u8]) -> bool {
    let trimmed = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &input[i..])
        .unwrap_or(&[]);
    trimmed.starts_with(b"-----BEGIN ")
}

pub(crate) fn check_size(what: &'static str, input: &[u8]) -> Result<()> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(Error::TooLarge {
            what,
            size: input.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    Ok(())
}

/// Every PEM block in the text, in order.
pub(crate) fn decode_all(what: &'static str, input: &[u8]) -> Result<Vec<Block>> {
    check_size(what, input)?;
    let text = core::str::from_utf8(input)
        .map_err(|_| Error::Pem(format!("{what}: PEM text is not UTF-8")))?;
    let blocks = pem::parse_many(text).map_err(|e| Error::Pem(format!("{what}: {e}")))?;
    if blocks.is_empty() {
        return Err(Error::Pem(format!("{what}: no PEM block found")));
    }
    Ok(blocks
        .into_iter()
        .map(|p| Block {
            label: p.tag().to_string(),
            der: p.into_contents(),
        })
        .collect())
}

/// Exactly one PEM block whose label is one of `labels`.
pub(crate) fn decode_one(what: &'static str, input: &[u8], labels: &[&str]) -> Result<Block> {
    let mut blocks = decode_all(what, input)?;
    if blocks.len() != 1 {
        return Err(Error::Pem(format!(
            "{what}: expected one PEM block, found {}",
            blocks.len()
        )));
    }
    let block = blocks.remove(0);
    if !labels.contains(&block.label.as_str()) {
        return Err(Error::Pem(format!(
            "{what}: expected a PEM block labelled {}, found \"{}\"",
            labels.join(" or "),
            block.label
        )));
    }
    Ok(block)
}

/// PEM text with 64-column lines and LF line ends, as openssl writes it.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

/// DER from PEM or DER input, checking the PEM label.
pub(crate) fn der_from_pem_or_der(
    what: &'static str,
    input: &[u8],
    labels: &[&str],
) -> Result<Vec<u8>> {
    check_size(what, input)?;
    if is_pem(input) {
        Ok(decode_one(what, input, labels)?.der)
    } else {
        Ok(input.to_vec())
    }
}

/// Lower-case hex, for serials and fingerprints.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_oversized_input_before_parsing() {
        let big = vec![b'A'; MAX_INPUT_BYTES + 1];
        assert!(matches!(
            decode_all("CSR", &big),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_wrong_labels_are_errors() {
        assert!(decode_all("CSR", b"-----BEGIN X-----\n!!!\n-----END X-----\n").is_err());
        assert!(decode_all("CSR", b"hello").is_err());
        assert!(decode_all("CSR", &[0xff, 0xfe, 0x00]).is_err());
        let pem = encode("CERTIFICATE", b"abc");
        let err = decode_one("CSR", pem.as_bytes(), &["CERTIFICATE REQUEST"]).unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE REQUEST"), "{err}");
    }

    #[test]
    fn round_trip_and_hex() {
        let pem = encode("TEST", &[1, 2, 3]);
        let b = decode_one("test", pem.as_bytes(), &["TEST"]).unwrap();
        assert_eq!(b.der, vec![1, 2, 3]);
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}
