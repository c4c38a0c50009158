//! PEM reading and writing shared by keys, CSRs and certificates (RFC 7468 through
//! `pem-rfc7468`, the codec the RustCrypto key crates already use), and the hex codec.

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

/// Every PEM block in the text, in order. Text between blocks (openssl's `-text` output,
/// comments) is skipped, as openssl does; each block itself must be strict RFC 7468.
pub(crate) fn decode_all(what: &'static str, input: &[u8]) -> Result<Vec<Block>> {
    check_size(what, input)?;
    let text = core::str::from_utf8(input)
        .map_err(|_| Error::Pem(format!("{what}: PEM text is not UTF-8")))?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let from = &rest[start..];
        let end = from
            .find("-----END ")
            .and_then(|e| from[e + 9..].find("-----").map(|t| e + 9 + t + 5))
            .ok_or_else(|| Error::Pem(format!("{what}: a PEM block has no END line")))?;
        let (label, der) = pem_rfc7468::Decoder::new_detect_wrap(&from.as_bytes()[..end])
            .and_then(|mut d| {
                let mut der = Vec::new();
                d.decode_to_end(&mut der)?;
                Ok((d.type_label().to_string(), der))
            })
            .map_err(|e| Error::Pem(format!("{what}: {e}")))?;
        blocks.push(Block { label, der });
        rest = &from[end..];
    }
    if blocks.is_empty() {
        return Err(Error::Pem(format!("{what}: no PEM block found")));
    }
    Ok(blocks)
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
    // Fails only for a label that is not printable ASCII: ours are constants.
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .unwrap_or_else(|e| format!("PEM encoding of {label} failed: {e}"))
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
pub fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// Hex digits (either case) to at most `max` bytes; `what` names the value in the error.
pub fn unhex(what: &str, hex: &str, max: usize) -> Result<Vec<u8>> {
    let bytes = base16ct::mixed::decode_vec(hex.as_bytes())
        .ok()
        .filter(|b| !b.is_empty() && b.len() <= max);
    bytes.ok_or_else(|| {
        Error::InvalidParameter(format!("{what} must be hex digits, at most {max} bytes"))
    })
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
        assert_eq!(unhex("x", "0AfF", 2).unwrap(), vec![0x0a, 0xff]);
        for bad in ["", "0", "zz", "aé", "000000"] {
            assert!(unhex("x", bad, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn several_blocks_with_text_between_and_crlf() {
        let a = encode("CERTIFICATE", &[1; 100]);
        let b = encode("CERTIFICATE", &[2; 10]).replace('\n', "\r\n");
        let text = format!("subject=CN x\n{a}some words\n{b}trailing");
        let blocks = decode_all("chain", text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].der, vec![2; 10]);
        assert!(decode_all(
            "chain",
            a.replace("-----END CERTIFICATE-----", "").as_bytes()
        )
        .is_err());
    }
}
