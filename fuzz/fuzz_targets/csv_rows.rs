//! Arbitrary bytes as a data file and as a voice file (with and without a valid
//! header in front): the reader and validator never panic, every row encodes
//! to valid JSON, and reading one byte at a time gives exactly the same rows.
#![no_main]

use cdr_core::schema;
use libfuzzer_sys::fuzz_target;

mod common;
use common::{read_all, with_header, Trickle};

fuzz_target!(|data: &[u8]| {
    for kind in [schema::data(), schema::voice()] {
        for input in [data.to_vec(), with_header(&kind, data)] {
            let whole = read_all(&kind, &input[..]);
            let trickled = read_all(&kind, Trickle(&input));
            assert_eq!(whole, trickled, "reading byte by byte changed the rows");
        }
    }
});
