//! Allocation-free text for the hot loop: decimal and hex integers, and event
//! timestamps formatted from a microsecond counter.

/// Appends the decimal digits of `n`.
pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` as exactly `width` decimal digits, zero-padded (`n` must fit).
fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Appends `n` in lowercase hex without leading zeros, as in an IPv6 group.
pub(super) fn push_hex(out: &mut Vec<u8>, n: u16) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12u32, 8, 4, 0] {
        let d = (n >> shift) & 0xf;
        if d != 0 || started || shift == 0 {
            started = true;
            out.push(DIGITS[usize::from(d)]);
        }
    }
}

/// Proleptic Gregorian (year, month, day) of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `YYYY-MM-DD HH:MM:SS.ffffff` from microseconds since the Unix epoch,
/// the way Python's `str(datetime)` does: the fraction is left out when it is
/// zero. The date part is worked out only when the day changes.
pub(super) struct TimestampWriter {
    day: i64,
    date: Vec<u8>,
}

impl TimestampWriter {
    pub(super) fn new() -> TimestampWriter {
        TimestampWriter {
            day: i64::MIN,
            date: Vec::with_capacity(11),
        }
    }

    /// Appends the timestamp; the year must be within 1..=9999 (the caller
    /// checks the whole time range once, up front).
    pub(super) fn push(&mut self, out: &mut Vec<u8>, micros: i64) {
        let secs = micros.div_euclid(1_000_000);
        let frac = micros.rem_euclid(1_000_000) as u64;
        let day = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u64;
        if day != self.day {
            let (y, m, d) = civil_from_days(day);
            self.date.clear();
            push_padded(&mut self.date, y.unsigned_abs(), 4);
            self.date.push(b'-');
            push_padded(&mut self.date, u64::from(m), 2);
            self.date.push(b'-');
            push_padded(&mut self.date, u64::from(d), 2);
            self.date.push(b' ');
            self.day = day;
        }
        out.extend_from_slice(&self.date);
        push_padded(out, sod / 3600, 2);
        out.push(b':');
        push_padded(out, sod / 60 % 60, 2);
        out.push(b':');
        push_padded(out, sod % 60, 2);
        if frac != 0 {
            out.push(b'.');
            push_padded(out, frac, 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    #[test]
    fn integers_match_std_formatting() {
        for n in [0u64, 7, 10, 99, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for n in [0u16, 0xa, 0x10, 0xdb8, 0xffff] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").into_bytes());
        }
    }

    #[test]
    fn civil_dates_match_chrono_across_leap_years_and_centuries() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-719_162i64..2_932_896).step_by(997).chain([-1, 0, 59, 11_016, 11_017]) {
            let want = epoch + chrono::Duration::days(days);
            let (y, m, d) = civil_from_days(days);
            assert_eq!(
                (y, m, d),
                (
                    i64::from(chrono::Datelike::year(&want)),
                    chrono::Datelike::month(&want),
                    chrono::Datelike::day(&want)
                )
            );
        }
    }

    #[test]
    fn timestamps_match_chrono_and_drop_a_zero_fraction() {
        let mut w = TimestampWriter::new();
        for micros in [
            0i64,
            1_704_070_875_291_148,
            1_709_164_800_000_000,
            951_782_399_999_999,
            -1,
        ] {
            let mut out = Vec::new();
            w.push(&mut out, micros);
            let dt = DateTime::from_timestamp_micros(micros).unwrap().naive_utc();
            let want = if micros.rem_euclid(1_000_000) == 0 {
                dt.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            };
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
