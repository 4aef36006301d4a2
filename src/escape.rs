//! Control characters in what a human reads: a file name (any bytes but `/`
//! and NUL) can hold a newline and forge a log line, or a terminal escape.
//! Text logs (see `logging`) and tables show them escaped (`\n`, `\u{1b}`);
//! JSON logs escape them already.

use std::borrow::Cow;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_values_show_control_characters_escaped() {
        assert_eq!(escape_controls("cdr_data_1.csv"), "cdr_data_1.csv");
        assert_eq!(escape_controls("a\nb\x07c\td"), "a\\nb\\u{7}c\td");
    }
}
