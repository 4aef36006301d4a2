//! Control characters in what a human reads: a file name (any bytes but `/`
//! and NUL) can hold a newline and forge a log line, or a terminal escape.
//! Text logs and tables show them escaped (`\n`, `\u{1b}`); JSON logs escape
//! them already.

use std::borrow::Cow;
use std::io::{self, Write};

/// `s` with every control character but tab escaped as Rust writes it.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' => c.to_string(),
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect(),
    )
}

/// A writer of text log lines: each write is one whole event, ending in its
/// newline (tracing's fmt layer formats an event, then writes it once), and
/// every control character before that newline is escaped. With colours on,
/// ESC stays: the formatter's own colour codes need it.
pub struct EscapingWriter<W> {
    inner: W,
    keep_esc: bool,
}

impl<W: Write> EscapingWriter<W> {
    /// Escapes what is written to `inner`; `keep_esc` when colours are on.
    pub fn new(inner: W, keep_esc: bool) -> Self {
        EscapingWriter { inner, keep_esc }
    }
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let safe = |b: u8| b >= 0x20 && b != 0x7f || b == b'\t' || (self.keep_esc && b == 0x1b);
        if body.iter().all(|&b| safe(b)) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            if safe(b) {
                out.push(b);
            } else {
                out.extend_from_slice(char::from(b).escape_default().to_string().as_bytes());
            }
        }
        out.extend_from_slice(end);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_a_value_cannot_start_a_new_log_line() {
        let mut out = Vec::new();
        let line = "INFO ingest committed file=cdr_data_1.csv\nERROR ... FORGED LINE\r\x1b[2J\n";
        EscapingWriter::new(&mut out, false).write_all(line.as_bytes()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert_eq!(
            text,
            "INFO ingest committed file=cdr_data_1.csv\\nERROR ... FORGED LINE\\r\\u{1b}[2J\n"
        );
    }

    #[test]
    fn colour_codes_stay_when_colours_are_on_and_plain_lines_pass_untouched() {
        let mut out = Vec::new();
        EscapingWriter::new(&mut out, true)
            .write_all(b"\x1b[32mINFO\x1b[0m ok\ttab\n")
            .unwrap();
        assert_eq!(out, b"\x1b[32mINFO\x1b[0m ok\ttab\n");
    }

    #[test]
    fn table_values_show_control_characters_escaped() {
        assert_eq!(escape_controls("cdr_data_1.csv"), "cdr_data_1.csv");
        assert_eq!(escape_controls("a\nb\x07c\td"), "a\\nb\\u{7}c\td");
    }
}
