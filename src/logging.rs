//! Logging: text or JSON lines on stderr, each written whole through a
//! writer that masks every remembered secret (`secret::scrub`: librdkafka's
//! own messages may quote one) and, in text, escapes control characters so
//! that no value (a file name holding a newline) can forge a line.

use std::io::{self, Write};

use crate::cli::LogFormat;
use crate::secret::scrub;

/// Sets up the global subscriber: `RUST_LOG` or `info,librdkafka=warn`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn"));
    // Colours only on a terminal: log files and container logs get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match format {
        LogFormat::Text => builder
            .with_writer(move || LogWriter::new(std::io::stderr(), true, ansi))
            .init(),
        LogFormat::Json => builder
            .with_writer(|| LogWriter::new(std::io::stderr(), false, false))
            .json()
            .init(),
    }
}

/// A writer of log lines: each write is one whole event, ending in its
/// newline (tracing's fmt layer formats an event, then writes it once).
/// Remembered secrets are masked; with `escape`, every control character
/// before the newline is escaped too. With colours on, ESC stays: the
/// formatter's own colour codes need it.
pub struct LogWriter<W> {
    inner: W,
    escape: bool,
    keep_esc: bool,
}

impl<W: Write> LogWriter<W> {
    /// Masks (and with `escape`, escapes) what is written to `inner`;
    /// `keep_esc` when colours are on.
    pub fn new(inner: W, escape: bool, keep_esc: bool) -> Self {
        LogWriter {
            inner,
            escape,
            keep_esc,
        }
    }
}

impl<W: Write> Write for LogWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let consumed = buf.len();
        let text = String::from_utf8_lossy(buf);
        let scrubbed = scrub(&text);
        if !self.escape {
            self.inner.write_all(scrubbed.as_bytes())?;
            return Ok(consumed);
        }
        let buf = scrubbed.as_bytes();
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let safe = |b: u8| b >= 0x20 && b != 0x7f || b == b'\t' || (self.keep_esc && b == 0x1b);
        if body.iter().all(|&b| safe(b)) {
            self.inner.write_all(buf)?;
            return Ok(consumed);
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
        Ok(consumed)
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
        LogWriter::new(&mut out, true, false)
            .write_all(line.as_bytes())
            .unwrap();
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
        LogWriter::new(&mut out, true, true)
            .write_all(b"\x1b[32mINFO\x1b[0m ok\ttab\n")
            .unwrap();
        assert_eq!(out, b"\x1b[32mINFO\x1b[0m ok\ttab\n");
    }

    #[test]
    fn a_remembered_secret_never_reaches_a_log_line_text_or_json() {
        let _ = crate::secret::Secret::new("log-secret-7");
        for escape in [true, false] {
            let mut out = Vec::new();
            LogWriter::new(&mut out, escape, false)
                .write_all(b"ERROR librdkafka: auth failed for log-secret-7\n")
                .unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "ERROR librdkafka: auth failed for ***\n"
            );
        }
    }
}
