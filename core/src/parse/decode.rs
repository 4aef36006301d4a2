//! Transparent gzip: `.csv.gz` files are the same data, compressed.

use std::io::{self, Chain, Cursor, Read, Take};

use flate2::read::MultiGzDecoder;

/// The two bytes every gzip member starts with (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes peeked at to recognise gzip, handed back in front of the rest.
type Peeked<R> = Chain<Take<Cursor<[u8; 2]>>, R>;

/// A file's content, decompressed if it was gzip. Returned by [`decode`].
pub enum Decoded<R: Read> {
    /// Not gzip: the bytes as they are.
    Plain(Peeked<R>),
    /// gzip: every member decoded in turn (concatenated `.gz` files are valid gzip).
    Gzip(MultiGzDecoder<Peeked<R>>),
}

/// Wraps `reader`: if its first two bytes are the gzip magic (1f 8b) the stream
/// is decoded with flate2's `MultiGzDecoder`, otherwise passed through unchanged.
///
/// The choice is made by content rather than by the `.gz` suffix so that a
/// mis-named file is still read correctly. A corrupt or truncated gzip stream
/// surfaces later as an `io::Error` from `read`, which `CdrReader` reports as
/// `FileError::Read` with the line it had reached.
pub fn decode<R: Read>(mut reader: R) -> io::Result<Decoded<R>> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // The peeked bytes go back in front of the rest (`got` is 0..=2).
    let peeked = Cursor::new(magic).take(got as u64).chain(reader);
    Ok(if got == 2 && magic == GZIP_MAGIC {
        Decoded::Gzip(MultiGzDecoder::new(peeked))
    } else {
        Decoded::Plain(peeked)
    })
}

impl<R: Read> Decoded<R> {
    /// Whether the input was gzip.
    pub fn is_gzip(&self) -> bool {
        matches!(self, Decoded::Gzip(_))
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(r) => r.read(buf),
            Decoded::Gzip(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::trickle::Trickle;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(r: impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        let mut r = r;
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn plain_bytes_pass_through_unchanged() {
        for input in [
            &b""[..],
            b"a",
            b"\x1f",
            b"ab",
            b"msisdn,tower_id\n1,2\n",
            b"\x1f\x8c rest",
        ] {
            let d = decode(input).unwrap();
            assert!(!d.is_gzip());
            assert_eq!(read_all(d).unwrap(), input);
        }
    }

    #[test]
    fn gzip_is_detected_by_magic_and_decoded() {
        let text = b"msisdn,tower_id\n123456,1\n";
        let gz = gzip(text);
        let d = decode(&gz[..]).unwrap();
        assert!(d.is_gzip());
        assert_eq!(read_all(d).unwrap(), text);
    }

    #[test]
    fn gzip_magic_split_across_reads_is_still_detected() {
        let gz = gzip(b"abc\n");
        let d = decode(Trickle(&gz)).unwrap();
        assert!(d.is_gzip());
        assert_eq!(read_all(d).unwrap(), b"abc\n");
    }

    #[test]
    fn concatenated_gzip_members_are_all_decoded() {
        let mut gz = gzip(b"first\n");
        gz.extend(gzip(b"second\n"));
        assert_eq!(read_all(decode(&gz[..]).unwrap()).unwrap(), b"first\nsecond\n");
    }

    #[test]
    fn truncated_gzip_is_a_read_error() {
        let gz = gzip(&b"0123456789,abcdef\n".repeat(1000));
        for cut in [3, 10, gz.len() / 2, gz.len() - 4, gz.len() - 1] {
            let err = read_all(decode(&gz[..cut]).unwrap()).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
                ),
                "cut {cut}: {err:?}"
            );
        }
    }
}
