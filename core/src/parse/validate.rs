//! The per-field rules of the contract's validation table, hand-rolled over bytes.
//!
//! These run once per field of every row, so each is a single pass with no
//! allocation; `chrono` and `str::parse` are kept for the tests that check
//! these functions agree with them.

use std::borrow::Cow;
use std::cell::Cell;
use std::net::IpAddr;

use crate::schema::ColumnType;

/// What a column's values must be: its [`ColumnType`] compiled once per file,
/// with the reason a failing value gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rule {
    /// `min` to `max` ASCII digits.
    Digits {
        min: usize,
        max: usize,
        reason: Cow<'static, str>,
    },
    /// ASCII digits that fit in a u64.
    Unsigned,
    /// An optional `-`, then digits that fit in an i64.
    Signed,
    /// An optional `-`, digits, and at most `scale` fraction digits after a `.`.
    Decimal { scale: usize, reason: Cow<'static, str> },
    /// Exactly one of a list (case-sensitive).
    OneOf {
        allowed: Vec<Box<str>>,
        reason: Cow<'static, str>,
    },
    /// What `std::net::IpAddr` parses.
    Ip,
    /// Anything but the empty string.
    NonEmpty,
    /// `YYYY-MM-DD HH:MM:SS[.f{1,precision}]`, read at `offset_secs` east of UTC.
    Time {
        cache: MinuteCache,
        precision: usize,
        offset_secs: i32,
        reason: Cow<'static, str>,
    },
}

const REASON_U64: &str = "expected an unsigned 64-bit integer";
const REASON_I64: &str = "expected a signed 64-bit integer";
const REASON_IP: &str = "expected an IPv4 or IPv6 address";
const REASON_EMPTY: &str = "must not be empty";

impl Rule {
    /// The rule of a column of type `ty`; a timestamp without a zone of its
    /// own is read at `default_offset_secs`.
    pub(super) fn for_type(ty: &ColumnType, default_offset_secs: i32) -> Rule {
        match ty {
            ColumnType::Digits { min, max } => Rule::Digits {
                min: usize::from(*min),
                max: usize::from(*max),
                reason: Cow::Owned(format!("expected {min} to {max} digits")),
            },
            ColumnType::Unsigned => Rule::Unsigned,
            ColumnType::Signed => Rule::Signed,
            ColumnType::Decimal { scale } => Rule::Decimal {
                scale: usize::from(*scale),
                reason: Cow::Owned(format!(
                    "expected a decimal number with at most {scale} fraction digits"
                )),
            },
            ColumnType::Enum { symbols } => Rule::OneOf {
                allowed: symbols.iter().map(|s| s.as_str().into()).collect(),
                reason: Cow::Owned(format!("expected one of {}", symbols.join(", "))),
            },
            ColumnType::Ip => Rule::Ip,
            // A required text's value must not be empty; an optional column's
            // empty value never reaches its rule.
            ColumnType::Text | ColumnType::Url => Rule::NonEmpty,
            ColumnType::Timestamp { precision, offset_secs } => Rule::Time {
                cache: MinuteCache::default(),
                precision: usize::from(*precision),
                offset_secs: offset_secs.unwrap_or(default_offset_secs),
                reason: Cow::Owned(match precision {
                    0 => "expected YYYY-MM-DD HH:MM:SS".to_owned(),
                    p => format!("expected YYYY-MM-DD HH:MM:SS[.{}]", "f".repeat(usize::from(*p))),
                }),
            },
        }
    }

    /// Whether every value this rule accepts is "plain": printable ASCII other
    /// than `"` and `\\`. The encoder copies plain values into JSON without
    /// looking at them, which is most of a row.
    pub(super) fn admits_only_plain(&self) -> bool {
        match self {
            // Digits, signs and dots; IP text (hex digits, `.`, `:`); digits, `-`, ` `, `:`, `.`.
            Rule::Digits { .. }
            | Rule::Unsigned
            | Rule::Signed
            | Rule::Decimal { .. }
            | Rule::Ip
            | Rule::Time { .. } => true,
            Rule::OneOf { allowed, .. } => allowed.iter().all(|a| is_plain(a.as_bytes())),
            Rule::NonEmpty => false,
        }
    }

    /// Checks `value`; on failure returns the reason for the row error. A time
    /// rule also yields its instant (UTC epoch millis), which the caller needs
    /// for the Kafka timestamp.
    #[inline]
    pub(super) fn check(&self, value: &[u8]) -> Result<Option<i64>, Cow<'static, str>> {
        let fail = |reason: &'static str| Err(Cow::Borrowed(reason));
        match self {
            Rule::Digits { min, max, .. } if (*min..=*max).contains(&value.len()) && all_digits(value) => Ok(None),
            Rule::Digits { reason, .. } => Err(reason.clone()),
            Rule::Unsigned if is_u64(value) => Ok(None),
            Rule::Unsigned => fail(REASON_U64),
            Rule::Signed if is_i64(value) => Ok(None),
            Rule::Signed => fail(REASON_I64),
            Rule::Decimal { scale, .. } if is_decimal(value, *scale) => Ok(None),
            Rule::Decimal { reason, .. } => Err(reason.clone()),
            Rule::OneOf { allowed, .. } if allowed.iter().any(|a| same_bytes(a.as_bytes(), value)) => Ok(None),
            Rule::OneOf { reason, .. } => Err(reason.clone()),
            Rule::Ip if is_ip(value) => Ok(None),
            Rule::Ip => fail(REASON_IP),
            Rule::NonEmpty if !value.is_empty() => Ok(None),
            Rule::NonEmpty => fail(REASON_EMPTY),
            Rule::Time {
                cache,
                precision,
                offset_secs,
                reason,
            } => match parse_time_ms_cached(value, *offset_secs, *precision, cache) {
                Some(ms) => Ok(Some(ms)),
                None => Err(reason.clone()),
            },
        }
    }
}

/// `a == b`, with a loop rather than a `memcmp` call: the values are a few bytes.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Printable ASCII other than `"` and `\\` (see [`Rule::admits_only_plain`]).
fn is_plain(v: &[u8]) -> bool {
    v.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Whether every byte is an ASCII digit; eight at a time from 8 bytes on (a
/// 13-digit msisdn is two overlapping words), one at a time below.
#[inline]
fn all_digits(v: &[u8]) -> bool {
    fn word(w: &[u8; 8]) -> bool {
        let x = u64::from_le_bytes(*w);
        // High nibble 3, and the low nibble at most 9 (adding 6 would carry).
        const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
        const THREES: u64 = 0x3030_3030_3030_3030;
        x & HIGH == THREES && (x + 0x0606_0606_0606_0606) & HIGH == THREES
    }
    match v.last_chunk::<8>() {
        None => v.iter().all(u8::is_ascii_digit),
        Some(last) => word(last) && v.chunks_exact(8).all(|c| c.first_chunk::<8>().is_some_and(word)),
    }
}

/// An optional `-`, then digits (no `+`, no spaces), within the range of an i64.
#[inline]
pub(super) fn is_i64(v: &[u8]) -> bool {
    const MIN_ABS: &[u8] = b"9223372036854775808";
    const MAX: &[u8] = b"9223372036854775807";
    let (digits, limit) = match v {
        [b'-', rest @ ..] => (rest, MIN_ABS),
        _ => (v, MAX),
    };
    match digits.len() {
        0 => false,
        1..=18 => all_digits(digits),
        19 => all_digits(digits) && digits <= limit,
        _ => false,
    }
}

/// An optional `-`, at least one digit, and optionally a `.` followed by 1 to
/// `scale` digits. The integer part is bounded only by the decimal's 38 digits.
#[inline]
fn is_decimal(v: &[u8], scale: usize) -> bool {
    let v = v.strip_prefix(b"-").unwrap_or(v);
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], Some(&v[dot + 1..])),
        None => (v, None),
    };
    let frac_ok = match frac {
        None => true,
        Some(f) => (1..=scale).contains(&f.len()) && all_digits(f),
    };
    !int.is_empty() && int.len() + frac.map_or(0, <[u8]>::len) <= 38 && all_digits(int) && frac_ok
}

/// Digits only (no sign, no spaces, unlike `u64::from_str` which takes a `+`),
/// and no more than `u64::MAX`.
#[inline]
pub(super) fn is_u64(v: &[u8]) -> bool {
    const MAX: &[u8] = b"18446744073709551615";
    match v.len() {
        0 => false,
        1..=19 => all_digits(v),
        // Same length, all digits: byte order is numeric order.
        20 => all_digits(v) && v <= MAX,
        _ => false,
    }
}

#[inline]
fn is_ip(v: &[u8]) -> bool {
    // IPv6 text is at most 45 bytes: anything longer is rejected before the
    // (slower) std parser, which decides everything the IPv4 fast path does not accept.
    is_plain_ipv4(v) || (v.len() <= 45 && std::str::from_utf8(v).ok().is_some_and(|s| s.parse::<IpAddr>().is_ok()))
}

/// Dotted-quad IPv4 exactly as `std::net::Ipv4Addr` parses it: four decimal
/// octets of 1 to 3 digits, at most 255, no leading zero. A fast path: `false`
/// only means "ask std".
#[inline]
fn is_plain_ipv4(v: &[u8]) -> bool {
    let (mut dots, mut digits, mut octet) = (0, 0, 0u32);
    for &b in v {
        if b == b'.' {
            if digits == 0 || dots == 3 {
                return false;
            }
            dots += 1;
            digits = 0;
            octet = 0;
        } else {
            let d = u32::from(b.wrapping_sub(b'0'));
            // Not a digit, a fourth digit, or a digit after a leading zero.
            if d > 9 || digits == 3 || (digits == 1 && octet == 0) {
                return false;
            }
            octet = octet * 10 + d;
            digits += 1;
            if octet > 255 {
                return false;
            }
        }
    }
    dots == 3 && digits > 0
}

/// [`parse_time_ms_cached`] without the cache: the reference it is tested against.
#[cfg(test)]
fn parse_time_ms(v: &[u8], offset_secs: i32) -> Option<i64> {
    let (minute, rest) = split_minute(v)?;
    Some(parse_minute(minute, offset_secs)? + parse_seconds(rest, 6)?)
}

/// Parses `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to `precision` (at most 6) fraction digits,
/// a real calendar date and time (no leap second), read as local time at
/// `offset_secs` east of UTC; returns UTC epoch milliseconds (fraction truncated).
///
/// It remembers the last minute it parsed: CDR files are in time order, so
/// most rows share their minute with the row before and only the seconds are
/// left to read.
pub(super) fn parse_time_ms_cached(v: &[u8], offset_secs: i32, precision: usize, cache: &MinuteCache) -> Option<i64> {
    let (minute, rest) = split_minute(v)?;
    let minute_ms = match cache.0.get() {
        Some((m, ms)) if m == *minute => ms,
        _ => {
            let ms = parse_minute(minute, offset_secs)?;
            cache.0.set(Some((*minute, ms)));
            ms
        }
    };
    Some(minute_ms + parse_seconds(rest, precision)?)
}

/// The last valid `YYYY-MM-DD HH:MM` seen and its epoch millis (see
/// [`parse_time_ms_cached`]). A `Cell` because checks run on a shared reader.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct MinuteCache(Cell<Option<([u8; 16], i64)>>);

/// `YYYY-MM-DD HH:MM` and what follows it, if the length can be right.
#[inline]
fn split_minute(v: &[u8]) -> Option<(&[u8; 16], &[u8])> {
    if !(19..=26).contains(&v.len()) {
        return None;
    }
    let (minute, rest) = v.split_at(16);
    Some((minute.try_into().ok()?, rest))
}

/// Epoch millis of the start of the minute `YYYY-MM-DD HH:MM`, local time at
/// `offset_secs` east of UTC, if it is a real date and time.
fn parse_minute(h: &[u8; 16], offset_secs: i32) -> Option<i64> {
    if h[4] != b'-' || h[7] != b'-' || h[10] != b' ' || h[13] != b':' {
        return None;
    }
    let year = num(&h[0..4])?;
    let month = num(&h[5..7])?;
    let day = num(&h[8..10])?;
    let hour = num(&h[11..13])?;
    let minute = num(&h[14..16])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60) - i64::from(offset_secs);
    Some(secs * 1000)
}

/// UTC epoch microseconds of a timestamp its rule accepted (any precision up
/// to 6), read at `offset_secs` east of UTC: the typed formats' value.
pub(crate) fn time_micros(v: &[u8], offset_secs: i32) -> Option<i64> {
    let (minute, rest) = split_minute(v)?;
    Some(parse_minute(minute, offset_secs)? * 1000 + parse_seconds_micros(rest, 6)?)
}

/// Milliseconds into the minute of `:SS` with an optional `.` and 1 to
/// `precision` (at most 6) fraction digits (truncated to millis).
#[inline]
fn parse_seconds(rest: &[u8], precision: usize) -> Option<i64> {
    Some(parse_seconds_micros(rest, precision)? / 1000)
}

/// Microseconds into the minute of `:SS` with an optional `.` and 1 to
/// `precision` (at most 6) fraction digits.
#[inline]
fn parse_seconds_micros(rest: &[u8], precision: usize) -> Option<i64> {
    let (sec, frac) = match rest {
        [b':', s @ ..] if s.len() == 2 => (s, &[][..]),
        [b':', s0, s1, b'.', frac @ ..] if !frac.is_empty() => (&[*s0, *s1][..], frac),
        _ => return None,
    };
    let second = num(sec)?;
    if second > 59 || frac.len() > precision.min(6) {
        return None;
    }
    let mut micros = num(frac)?;
    for _ in frac.len()..6 {
        micros *= 10;
    }
    Some(i64::from(second) * 1_000_000 + i64::from(micros))
}

/// Decimal value of up to 9 ASCII digits; `None` if any byte is not a digit.
/// The empty slice is 0 (a timestamp without fraction).
#[inline]
fn num(d: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &b in d {
        let x = b.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        n = n * 10 + u32::from(x);
    }
    Some(n)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, TimeZone};

    fn chrono_ms(s: &str, offset_secs: i32) -> Option<i64> {
        let fmt = if s.len() > 19 {
            "%Y-%m-%d %H:%M:%S%.f"
        } else {
            "%Y-%m-%d %H:%M:%S"
        };
        let naive = NaiveDateTime::parse_from_str(s, fmt).ok()?;
        let tz = chrono::FixedOffset::east_opt(offset_secs)?;
        Some(tz.from_local_datetime(&naive).single()?.timestamp_millis())
    }

    fn rule(ty: ColumnType) -> Rule {
        Rule::for_type(&ty, 0)
    }

    fn one_of(symbols: &[&str]) -> Rule {
        rule(ColumnType::Enum {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn the_builtin_kinds_keep_the_contract_reasons() {
        let reasons: Vec<String> = crate::schema::data()
            .columns()
            .iter()
            .chain(crate::schema::voice().columns())
            .map(|c| rule(c.ty.clone()).check(b"").unwrap_err().into_owned())
            .collect();
        assert_eq!(
            reasons,
            [
                "expected 6 to 15 digits",
                "expected an unsigned 64-bit integer",
                "expected an unsigned 64-bit integer",
                "expected an unsigned 64-bit integer",
                "expected one of application, text, image, video",
                "expected an IPv4 or IPv6 address",
                "must not be empty",
                "expected YYYY-MM-DD HH:MM:SS[.ffffff]",
                "expected 6 to 15 digits",
                "expected an unsigned 64-bit integer",
                "expected one of voice, video",
                "expected 6 to 15 digits",
                "expected an unsigned 64-bit integer",
                "expected YYYY-MM-DD HH:MM:SS[.ffffff]",
            ]
        );
    }

    #[test]
    fn signed_takes_a_minus_and_the_whole_i64_range_only() {
        for ok in ["0", "-1", "42", "9223372036854775807", "-9223372036854775808"] {
            assert!(is_i64(ok.as_bytes()), "{ok}");
            assert!(ok.parse::<i64>().is_ok());
        }
        for bad in [
            "",
            "-",
            "+1",
            "9223372036854775808",
            "-9223372036854775809",
            "1.5",
            " 1",
            "--1",
        ] {
            assert!(!is_i64(bad.as_bytes()), "{bad}");
        }
        assert_eq!(rule(ColumnType::Signed).check(b"x").unwrap_err(), REASON_I64);
    }

    #[test]
    fn decimal_bounds_its_fraction_digits_by_the_scale() {
        let r = rule(ColumnType::Decimal { scale: 2 });
        for ok in ["0", "12", "-12", "12.3", "12.34", "-0.01"] {
            assert!(r.check(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in ["", "-", ".5", "12.", "12.345", "1,5", "1e3", "+1", "1.2.3"] {
            assert!(r.check(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            r.check(b"x").unwrap_err(),
            "expected a decimal number with at most 2 fraction digits"
        );
        assert!(rule(ColumnType::Decimal { scale: 0 }).check(b"1.0").is_err());
    }

    #[test]
    fn a_timestamp_takes_at_most_its_precision_and_its_own_zone() {
        let whole = rule(ColumnType::Timestamp {
            precision: 0,
            offset_secs: Some(3600),
        });
        assert_eq!(whole.check(b"1970-01-01 01:00:00"), Ok(Some(0)));
        assert_eq!(
            whole.check(b"1970-01-01 01:00:00.5").unwrap_err(),
            "expected YYYY-MM-DD HH:MM:SS"
        );
        let millis = rule(ColumnType::Timestamp {
            precision: 3,
            offset_secs: None,
        });
        assert_eq!(millis.check(b"1970-01-01 00:00:01.250"), Ok(Some(1250)));
        assert!(millis.check(b"1970-01-01 00:00:01.2500").is_err());
    }

    #[test]
    fn time_agrees_with_chrono_on_valid_values() {
        for s in [
            "2024-01-01 01:01:15.291148",
            "2024-01-01 01:01:15",
            "2024-02-29 23:59:59.9",
            "1969-12-31 23:59:59.999",
            "1900-03-01 00:00:00.000001",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
            "2000-02-29 12:00:00.12",
        ] {
            for off in [0, 3600 * 2, -5 * 3600 - 1800] {
                assert_eq!(parse_time_ms(s.as_bytes(), off), chrono_ms(s, off), "{s} {off}");
            }
        }
    }

    #[test]
    fn cached_time_parse_agrees_with_the_uncached_one() {
        let cache = MinuteCache::default();
        for s in [
            "2024-01-01 01:01:15.291148",
            "2024-01-01 01:01:59",
            "2024-01-01 01:01:60",
            "2024-01-01 01:01:5",
            "2024-01-01 01:02:00.1",
            "2024-01-01 01:02:00.",
            "2024-01-01 01:02:00.1234567",
            "2023-02-29 00:00:00",
            "2024-01-01 01:02:00x1",
            "2024-01-01 01:02:00.1",
        ] {
            for _ in 0..2 {
                assert_eq!(
                    parse_time_ms_cached(s.as_bytes(), 3600, 6, &cache),
                    parse_time_ms(s.as_bytes(), 3600),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn time_rejects_malformed_and_impossible_values() {
        for s in [
            "",
            "2024-01-01",
            "2024-01-01T01:01:15",
            "2024-01-01 01:01:15.",
            "2024-01-01 01:01:15.1234567",
            "2024-01-01 01:01:15,123",
            "2023-02-29 00:00:00",
            "1900-02-29 00:00:00",
            "2024-13-01 00:00:00",
            "2024-00-01 00:00:00",
            "2024-04-31 00:00:00",
            "2024-01-00 00:00:00",
            "2024-01-01 24:00:00",
            "2024-01-01 23:60:00",
            "2024-01-01 23:59:60",
            "2024-01-01 23:59:5x",
            "+024-01-01 23:59:59",
            " 2024-01-01 23:59:59",
            "2024-01-01 23:59:59 ",
            "2024-01-01 23:59:59.12a",
        ] {
            assert_eq!(parse_time_ms(s.as_bytes(), 0), None, "{s:?}");
        }
    }

    #[test]
    fn digit_check_agrees_with_the_byte_rule_at_every_position() {
        for b in 0..=255u8 {
            for len in 1..20 {
                for at in 0..len {
                    let mut v = vec![b'7'; len];
                    v[at] = b;
                    assert_eq!(all_digits(&v), b.is_ascii_digit(), "{b:#x} at {at} of {len}");
                }
            }
        }
        assert!(all_digits(b""));
    }

    #[test]
    fn u64_accepts_digits_up_to_max_only() {
        assert!(is_u64(b"0"));
        assert!(is_u64(b"007"));
        assert!(is_u64(b"18446744073709551615"));
        assert!(!is_u64(b"18446744073709551616"));
        assert!(!is_u64(b"99999999999999999999"));
        assert!(!is_u64(b"100000000000000000000"));
        assert!(!is_u64(b""));
        assert!(!is_u64(b"+5"));
        assert!(!is_u64(b"-5"));
        assert!(!is_u64(b" 5"));
        assert!(!is_u64(b"12x4"));
    }

    #[test]
    fn phone_needs_6_to_15_digits() {
        let r = rule(ColumnType::Digits { min: 6, max: 15 });
        assert!(r.check(b"123456").is_ok());
        assert!(r.check(b"123456789012345").is_ok());
        assert_eq!(r.check(b"12345").unwrap_err(), "expected 6 to 15 digits");
        assert!(r.check(b"1234567890123456").is_err());
        assert!(r.check(b"+972451572673").is_err());
        assert!(r.check(b"97245 1572673").is_err());
        assert!(r.check(b"").is_err());
    }

    #[test]
    fn ip_accepts_what_std_accepts() {
        for ok in [
            "221.128.139.195",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
            "0.0.0.0",
        ] {
            assert!(is_ip(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "256.1.1.1",
            "1.2.3",
            " 1.2.3.4",
            "1.2.3.4 ",
            "example.com",
            "fe80::1%eth0",
        ] {
            assert!(!is_ip(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn ipv4_fast_path_agrees_with_std() {
        let mut cases: Vec<String> = [
            "1.2.3.4",
            "01.2.3.4",
            "1.2.3.04",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.0",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            ".1.2.3",
            "1.2.3.",
            "",
            "1.2.3.4a",
            "300.1.1.1",
            "199.99.9.0",
        ]
        .map(String::from)
        .to_vec();
        for a in [
            "0", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "260", "299", "300", "000", "010",
            "0000",
        ] {
            cases.push(format!("{a}.1.{a}.1"));
        }
        for c in cases {
            let std_ok = c.parse::<std::net::Ipv4Addr>().is_ok();
            assert!(
                !is_plain_ipv4(c.as_bytes()) || std_ok,
                "fast path accepts {c:?}, std does not"
            );
            assert_eq!(is_ip(c.as_bytes()), c.parse::<IpAddr>().is_ok(), "{c:?}");
        }
    }

    #[test]
    fn plain_rules_admit_only_plain_values() {
        for ty in [
            ColumnType::Digits { min: 1, max: 2 },
            ColumnType::Unsigned,
            ColumnType::Signed,
            ColumnType::Decimal { scale: 2 },
            ColumnType::Ip,
            ColumnType::Timestamp {
                precision: 6,
                offset_secs: None,
            },
        ] {
            assert!(rule(ty.clone()).admits_only_plain(), "{ty}");
        }
        assert!(!rule(ColumnType::Text).admits_only_plain());
        assert!(!rule(ColumnType::Url).admits_only_plain());
        assert!(one_of(&["voice"]).admits_only_plain());
        assert!(!one_of(&["a\"b"]).admits_only_plain());
        assert!(!one_of(&["é"]).admits_only_plain());
        for v in ["::ffff:1.2.3.4", "2001:db8::1", "1.2.3.4", "2024-01-01 00:00:00.123"] {
            assert!(is_plain(v.as_bytes()));
        }
    }

    #[test]
    fn one_of_is_exact_and_case_sensitive() {
        let r = one_of(&["voice", "video"]);
        assert!(r.check(b"voice").is_ok());
        assert_eq!(r.check(b"Voice").unwrap_err(), "expected one of voice, video");
        assert!(r.check(b"voice ").is_err());
        assert!(r.check(b"").is_err());
    }

    #[test]
    fn non_empty_rejects_only_the_empty_string() {
        assert!(Rule::NonEmpty.check(b" ").is_ok());
        assert_eq!(Rule::NonEmpty.check(b"").unwrap_err(), REASON_EMPTY);
    }
}
