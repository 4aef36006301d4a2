//! The gzip path: arbitrary bytes through `decode` then the reader (mostly
//! corrupt gzip: it must end in a file error, never a panic), and the same
//! bytes compressed, which must read exactly as they do uncompressed, even
//! when the compressed stream arrives one byte per read.
#![no_main]

use std::io::Write;

use cdr_core::parse::decode;
use cdr_core::schema;
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;

mod common;
use common::{read_all, with_header, Trickle};

fuzz_target!(|data: &[u8]| {
    let kind = if data.first().is_some_and(|b| b & 1 == 1) {
        schema::voice()
    } else {
        schema::data()
    };
    // As given: usually not gzip, or gzip with garbage after the magic.
    if let Ok(decoded) = decode(data) {
        let _ = read_all(&kind, decoded);
    }
    // Compressed: the same rows as the plain bytes.
    let plain = with_header(&kind, data);
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(&plain).expect("writing to a Vec cannot fail");
    let gz = enc.finish().expect("writing to a Vec cannot fail");
    let expected = read_all(&kind, &plain[..]);
    let decoded = decode(&gz[..]).expect("reading a slice cannot fail");
    assert_eq!(read_all(&kind, decoded), expected);
    let decoded = decode(Trickle(&gz)).expect("reading a slice cannot fail");
    assert_eq!(read_all(&kind, decoded), expected);
    // Truncated: at most a file error, never a panic.
    if let Ok(decoded) = decode(&gz[..gz.len() / 2]) {
        let _ = read_all(&kind, decoded);
    }
});
