//! What a record weighs on the wire: the contract's headers and the framing
//! the broker counts against a topic's `max.message.bytes`.

/// The contract's record headers, in order.
pub const HEADER_NAMES: [&str; 4] = ["cdr-id", "cdr-source-file", "cdr-row", "cdr-file-sha256"];

/// Values of the headers named by [`HEADER_NAMES`]: key, file, row, sha256.
pub type HeaderValues<'a> = [&'a [u8]; 4];

/// What a lone record costs on the wire beyond its key, value and headers:
/// the v2 record batch header (61 bytes) and the record's own framing (length,
/// attributes, timestamp and offset deltas, key/value lengths, header count:
/// at most 36 bytes as varints), rounded up.
pub const RECORD_OVERHEAD: usize = 100;

/// Framing of one header beyond its name and value (two length varints).
pub const HEADER_OVERHEAD: usize = 10;

/// Bytes a record occupies on the wire, as the broker counts it against
/// `max.message.bytes` (uncompressed: compression is not relied on).
pub fn wire_size(key: usize, value: usize, headers: usize) -> usize {
    key + value + headers + RECORD_OVERHEAD
}

/// Wire bytes of a record with this key, value and the contract's headers.
pub fn record_size(key: &[u8], value: &[u8], headers: &HeaderValues<'_>) -> usize {
    let headers: usize = HEADER_NAMES
        .iter()
        .zip(headers)
        .map(|(k, v)| k.len() + v.len() + HEADER_OVERHEAD)
        .sum();
    wire_size(key.len(), value.len(), headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_size_counts_key_value_every_header_and_the_framing() {
        let hv: HeaderValues<'_> = [b"k", b"f.csv", b"7", b"ab"];
        let headers = "cdr-id".len() + "cdr-source-file".len() + "cdr-row".len() + "cdr-file-sha256".len() + 9;
        assert_eq!(
            record_size(b"key", b"value", &hv),
            3 + 5 + headers + 4 * HEADER_OVERHEAD + RECORD_OVERHEAD
        );
    }
}
